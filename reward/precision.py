"""Mixed precision and activation checkpointing shared by every backbone."""
from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
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
