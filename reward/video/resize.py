"""Spatial resampling of [B, T, 3, H, W] videos: frame resize, DOVER's aesthetic resize and its small-video upsample."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .quantize import MAX_LEVEL, round_levels, to_levels, truncate_levels

#: Side of DOVER's views, and the short side below which fragments are taken from an upsampled video.
VIEW_SIZE = 224


def resize_frames(frames: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize every [3, H, W] frame of [..., 3, H, W] to ``size`` (bilinear, antialiased, aspect not kept).

    Frames already of that size come back unchanged (the resampler would return them bit for bit).
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(frames.shape[-2:]) == size:
        return frames
    flat = frames.reshape(-1, *frames.shape[-3:])
    resized = F.interpolate(flat, size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized.reshape(*frames.shape[:-2], *size)


def aesthetic_resize(
    videos: torch.Tensor, *, size: int | tuple[int, int] = VIEW_SIZE, quantize: bool = True
) -> torch.Tensor:
    """Resize every frame of [B, T, 3, H, W] in [0, 1] to ``size`` (aspect not kept); returns 0-255 levels.

    Bilinear with antialiasing on the 0-255 scale, like the public DOVER aesthetic view. With
    ``quantize`` the input and the output are snapped to uint8 levels (half to even) by
    straight-through estimators, which reproduces the reference exactly for ``u8 / 255`` inputs.
    """
    resized = resize_frames(to_levels(videos, quantize=quantize), size)
    return round_levels(resized) if quantize else resized


def upsample_scale(height: int, width: int, *, min_side: int = VIEW_SIZE) -> float | None:
    """Scale factor of DOVER's small-video fallback (``1 / min(H, W) * min_side``), or None if not needed."""
    ratio = min(height / min_side, width / min_side)
    return 1 / ratio if ratio < 1 else None


def _bilinear_taps(size_in: int, size_out: int, scale: float, device: torch.device):
    """Source indices and float32 weights of the reference bilinear resampler along one axis.

    ``src = max(fma(1/scale, dst + 0.5, -0.5), 0)`` with the *scale factor* (not in/out sizes).
    """
    step = float(np.float32(1 / scale))  # the float32 scale factor, exactly, as a double
    centres = torch.arange(size_out, dtype=torch.float32, device=device) + 0.5
    src = (centres.double() * step - 0.5).float().clamp_(min=0)
    first = src.trunc().long()
    second = (first + 1).clamp_(max=size_in - 1)
    far = (src - first.float()).clamp_(0, 1)
    return first, second, 1 - far, far


def _fma32(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """float32 ``a * b + c`` with one rounding (a float64 product of float32 values is exact)."""
    return (a.double() * b.double() + c.double()).float()


def upsample_small_video(videos: torch.Tensor, scale: float, *, quantize: bool = True) -> torch.Tensor:
    """Upsample [B, T, 3, H, W] in [0, 1] by ``scale`` (bilinear); returns 0-255 levels.

    Follows the reference exactly: resampling on the [0, 1] scale with the scale factor itself
    (not in/out sizes), output ``floor(H * scale) x floor(W * scale)``, rows interpolated first
    with fused multiply-adds, then ``* 255`` and, with ``quantize``, truncation to uint8 levels
    (straight-through). Written out rather than calling ``F.interpolate``, whose CPU kernel rounds
    differently with one thread than with several.
    """
    height, width = videos.shape[-2:]
    rows = _bilinear_taps(height, int(height * scale), scale, videos.device)
    cols = _bilinear_taps(width, int(width * scale), scale, videos.device)
    frames = videos.float()
    left, right = frames[..., cols[0]], frames[..., cols[1]]
    along_w = _fma32(left, cols[2], right * cols[3])
    top, bottom = along_w[..., rows[0], :], along_w[..., rows[1], :]
    upsampled = _fma32(top, rows[2][:, None], bottom * rows[3][:, None])
    levels = upsampled * MAX_LEVEL
    return truncate_levels(levels) if quantize else levels
