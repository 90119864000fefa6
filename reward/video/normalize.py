"""DOVER's per-channel normalisation of 0-255 pixel levels."""
from __future__ import annotations

import torch

#: ImageNet mean and std on the 0-255 scale (RGB), as DOVER uses them.
DOVER_MEAN = (123.675, 116.28, 103.53)
DOVER_STD = (58.395, 57.12, 57.375)


def normalize_levels(levels: torch.Tensor, *, channel_dim: int) -> torch.Tensor:
    """``(levels - mean) / std`` per RGB channel, in the tensor's float dtype (float32 constants).

    Subtract, then divide (no reciprocal multiply): on uint8 levels this is bit-identical to the
    reference's normalised views.
    """
    shape = [1] * levels.ndim
    shape[channel_dim] = 3
    mean = torch.tensor(DOVER_MEAN, dtype=torch.float32, device=levels.device).to(levels.dtype).view(shape)
    std = torch.tensor(DOVER_STD, dtype=torch.float32, device=levels.device).to(levels.dtype).view(shape)
    return (levels - mean) / std
