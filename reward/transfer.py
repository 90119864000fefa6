"""Host-built tensors (indices, tokens, constants) on the model's device without making the host wait.

A plain ``cpu_tensor.to("cuda")`` copies from pageable memory and waits for the copy, once per
call; in a training loop that stall repeats every step. Index tensors and token ids go through
pinned memory with ``non_blocking=True`` instead (the stream orders the copy before its use), and
constants are built once per device and kept.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import torch


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` on ``device``; a host tensor bound for an accelerator is copied without a host sync."""
    device = torch.device(device)
    if tensor.device == device or tensor.device.type != "cpu" or device.type == "cpu":
        return tensor.to(device)
    if torch.cuda.is_available() and device.type == "cuda":
        tensor = tensor.contiguous().pin_memory()
    return tensor.to(device, non_blocking=True)


def device_constant(values: Sequence[float], device: torch.device | str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A small constant vector on ``device`` in ``dtype``, built once per device and dtype and kept (never modify it)."""
    return _cached_constant(tuple(float(v) for v in values), torch.device(device), dtype)


@functools.lru_cache(maxsize=256)
def _cached_constant(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # a normal (non-inference) tensor, so that autograd may save it even if first built under inference_mode
    with torch.inference_mode(False), torch.no_grad():
        return torch.tensor(values, dtype=dtype).to(device)
