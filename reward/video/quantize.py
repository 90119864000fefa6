"""Pixel levels on the 0-255 scale, optionally snapped to uint8 levels by a straight-through estimator.

The public DOVER pipeline works on uint8 frames; snapping reproduces it bit for bit while the
straight-through backward (identity) keeps gradients flowing to the pixels.
"""
from __future__ import annotations

import torch

#: Largest uint8 level.
MAX_LEVEL = 255.0


def straight_through(x: torch.Tensor, forward_value: torch.Tensor) -> torch.Tensor:
    """``forward_value`` in the forward pass, identity gradient to ``x`` in the backward pass.

    Exact in float: for levels in [0, 255] that differ from ``x`` by less than one, ``x + (q - x)``
    rounds back to ``q`` (Sterbenz), so the forward value is the quantised level itself.
    """
    return x + (forward_value - x).detach()


def round_levels(levels: torch.Tensor) -> torch.Tensor:
    """Snap 0-255 values to the nearest uint8 level (half to even, saturating), straight-through."""
    return straight_through(levels, levels.detach().round().clamp(0.0, MAX_LEVEL))


def truncate_levels(levels: torch.Tensor) -> torch.Tensor:
    """Truncate 0-255 values to uint8 levels like a float-to-uint8 cast (saturating), straight-through."""
    return straight_through(levels, levels.detach().clamp(0.0, MAX_LEVEL).trunc())


def to_levels(videos: torch.Tensor, *, quantize: bool) -> torch.Tensor:
    """[0, 1] pixels to the 0-255 scale; ``quantize`` snaps them to uint8 levels (exact for ``u8 / 255``)."""
    levels = videos * MAX_LEVEL
    return round_levels(levels) if quantize else levels


def frame_levels(frames: torch.Tensor, *, quantize: bool) -> torch.Tensor:
    """0-255 levels of [0, 1] float frames, or of uint8 frames; snapped uint8 frames are their own levels (``u8 / 255``
    snaps back to ``u8`` exactly), so they skip the float round trip and its temporaries."""
    if frames.dtype == torch.uint8:
        return frames.float() if quantize else to_levels(frames.float().div_(MAX_LEVEL), quantize=False)
    return to_levels(frames.to(view_dtype(frames)), quantize=quantize)


def view_dtype(videos: torch.Tensor) -> torch.dtype:
    """Views are computed in float32 at least (half-precision inputs cannot hold 0-255 levels exactly)."""
    return torch.promote_types(videos.dtype, torch.float32)
