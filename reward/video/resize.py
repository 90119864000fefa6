"""Spatial resampling of [B, T, 3, H, W] videos: DOVER's aesthetic resize and its small-video upsample."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .quantize import MAX_LEVEL, round_levels, to_levels, truncate_levels

#: Side of DOVER's views, and the short side below which fragments are taken from an upsampled video.
VIEW_SIZE = 224


def _per_frame(videos: torch.Tensor, resample) -> torch.Tensor:
    """Apply a [N, 3, H, W] -> [N, 3, H', W'] resampler to every frame of [B, T, 3, H, W]."""
    batch, frames = videos.shape[:2]
    out = resample(videos.reshape(batch * frames, *videos.shape[2:]))
    return out.reshape(batch, frames, *out.shape[1:])


def aesthetic_resize(
    videos: torch.Tensor, *, size: int | tuple[int, int] = VIEW_SIZE, quantize: bool = True
) -> torch.Tensor:
    """Resize every frame of [B, T, 3, H, W] in [0, 1] to ``size`` (aspect not kept); returns 0-255 levels.

    Bilinear with antialiasing on the 0-255 scale, like the public DOVER aesthetic view. With
    ``quantize`` the input and the output are snapped to uint8 levels (half to even) by
    straight-through estimators, which reproduces the reference exactly for ``u8 / 255`` inputs.
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    levels = to_levels(videos, quantize=quantize)
    resized = _per_frame(
        levels, lambda frames: F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True)
    )
    return round_levels(resized) if quantize else resized


def upsample_scale(height: int, width: int, *, min_side: int = VIEW_SIZE) -> float | None:
    """Scale factor of DOVER's small-video fallback (``1 / min(H, W) * min_side``), or None if not needed."""
    ratio = min(height / min_side, width / min_side)
    return 1 / ratio if ratio < 1 else None


def upsample_small_video(videos: torch.Tensor, scale: float, *, quantize: bool = True) -> torch.Tensor:
    """Upsample [B, T, 3, H, W] in [0, 1] by ``scale`` (bilinear); returns 0-255 levels.

    Follows the reference exactly: resampling on the [0, 1] scale with the scale factor itself
    (not in/out sizes), output ``floor(H * scale) x floor(W * scale)``, then ``* 255`` and, with
    ``quantize``, truncation to uint8 levels (straight-through).
    """
    upsampled = _per_frame(
        videos,
        lambda frames: F.interpolate(
            frames, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=False
        ),
    )
    levels = upsampled * MAX_LEVEL
    return truncate_levels(levels) if quantize else levels
