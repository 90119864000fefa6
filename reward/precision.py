"""Mixed precision and activation checkpointing shared by every backbone."""
from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

#: Names accepted wherever a compute dtype is configured.
DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """Turn ``"bf16"``, ``"bfloat16"``, ``torch.bfloat16`` ... into a torch dtype (None stays None)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}") from None


@functools.cache
def cpu_has_amx() -> bool | None:
    """Whether this CPU's matrix units (AMX) are usable by torch; None when torch cannot tell."""
    init_amx = getattr(torch._C._cpu, "_init_amx", None)
    return None if init_amx is None else bool(init_amx())


@functools.cache
def warn_slow_cpu_bf16() -> None:
    """Say once per process that bf16 on a CPU without AMX trades speed for memory."""
    warnings.warn(
        "bf16 autocast on a CPU without AMX: its AVX-512 bf16 matrix products can be slower than fp32 ones "
        "(about half their speed on the Xeon in benchmarks/RESULTS.md), so bf16 here saves memory, not time. "
        "Use dtype=None (fp32) for speed on this CPU; bf16 pays off on GPUs and AMX CPUs.",
        UserWarning,
        stacklevel=3,
    )


def backbone_autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast for backbones when a low-precision compute dtype is set; a no-op for fp32/None."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    if device.type == "cpu" and dtype == torch.bfloat16 and cpu_has_amx() is False:
        warn_slow_cpu_bf16()
    return torch.autocast(device_type=device.type, dtype=dtype)


def full_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Turn autocast off so heads, fusion and losses run in fp32."""
    return torch.autocast(device_type=device.type, enabled=False)


def maybe_checkpoint(fn: Callable[..., Any], *args: Any, enabled: bool) -> Any:
    """Run ``fn(*args)``, recomputing it in backward (non-reentrant) when ``enabled`` and grads are on."""
    if enabled and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


#: Layers whose weights hold nearly all of a backbone's bytes and reach autocast's matrix products as they are;
#: norms, position tables and other parameters keep their dtype (they are small, and CPU norms need fp32 weights).
LOW_PRECISION_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding, nn.MultiheadAttention)


def backbone_modules(model: nn.Module) -> list[nn.Module]:
    """The backbones inside ``model``: modules whose class sets ``is_backbone = True`` (Swin-3D, ConvNeXt-3D, BLIP,
    PCQA's frame backbone and prompt encoder); heads, adapters and fusion are not."""
    return [module for module in model.modules() if getattr(type(module), "is_backbone", False)]


def store_weights(modules: Iterable[nn.Module], dtype: torch.dtype) -> int:
    """Freeze ``modules`` and store the weights of their matrix-product layers in ``dtype``; returns the bytes saved."""
    saved = 0
    for module in modules:
        module.requires_grad_(False)
        for layer in module.modules():
            if isinstance(layer, LOW_PRECISION_LAYERS):
                for parameter in layer.parameters(recurse=False):
                    if parameter.is_floating_point() and parameter.dtype != dtype:
                        saved += parameter.numel() * (parameter.element_size() - torch.empty((), dtype=dtype).element_size())
                        parameter.data = parameter.data.to(dtype)
    return saved


def storage_float_dtype(module: nn.Module) -> torch.dtype:
    """The float dtype inputs of ``module`` are prepared in: its parameters' (fp64 in parity tests), fp32 where the
    weights are stored in a low precision (autocast computes in it)."""
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32
