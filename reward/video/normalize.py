"""Per-channel normalisation of pixels: DOVER's 0-255 levels by default, or any backbone's statistics."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..transfer import device_constant

#: ImageNet mean and std on the 0-255 scale (RGB), as DOVER uses them.
DOVER_MEAN = (123.675, 116.28, 103.53)
DOVER_STD = (58.395, 57.12, 57.375)


def normalize_levels(
    levels: torch.Tensor,
    *,
    channel_dim: int,
    mean: Sequence[float] = DOVER_MEAN,
    std: Sequence[float] = DOVER_STD,
) -> torch.Tensor:
    """``(levels - mean) / std`` per RGB channel, in the tensor's float dtype (float32 constants).

    Subtract, then divide (no reciprocal multiply): on uint8 levels this is bit-identical to the
    reference's normalised views. ``mean``/``std`` must be on the scale of ``levels`` (e.g. a timm
    backbone's statistics for [0, 1] pixels).
    """
    shape = [1] * levels.ndim
    shape[channel_dim] = 3
    mean = device_constant(mean, levels.device).to(levels.dtype).view(shape)  # float32 constants, as documented
    std = device_constant(std, levels.device).to(levels.dtype).view(shape)
    return (levels - mean) / std
