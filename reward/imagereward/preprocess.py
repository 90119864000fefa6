"""ImageReward's image preprocessing as differentiable tensor ops (resize, centre crop, CLIP normalisation)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..transfer import device_constant

#: Side of the square BLIP input.
IMAGE_SIZE = 224
#: CLIP normalisation constants used by ImageReward.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def resized_shape(height: int, width: int, size: int = IMAGE_SIZE) -> tuple[int, int]:
    """Short side to ``size``, long side ``int(size * long / short)`` (truncated), as torchvision's Resize(int)."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def centre_crop_offsets(height: int, width: int, size: int = IMAGE_SIZE) -> tuple[int, int]:
    """Top and left of the centre crop, rounded half to even like torchvision's CenterCrop."""
    return round((height - size) / 2), round((width - size) / 2)


def imagereward_pixels(images: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Turn images [N, 3, H, W] in [0, 1] into BLIP pixel values [N, 3, size, size].

    Bicubic resize with antialiasing (PyTorch then uses Pillow's a = -0.5 kernel) so the short
    side becomes ``size``, clamped to [0, 1] as Pillow's uint8 output is, then a centre crop and
    CLIP mean/std. Frames already ``size`` x ``size`` skip the resize, so the result equals the
    public pipeline up to float rounding. Gradients flow to ``images``.
    """
    height, width = images.shape[-2:]
    new_height, new_width = resized_shape(height, width, size)
    if (new_height, new_width) != (height, width):
        images = F.interpolate(images, size=(new_height, new_width), mode="bicubic", antialias=True, align_corners=False)
        images = images.clamp(0.0, 1.0)
    top, left = centre_crop_offsets(new_height, new_width, size)
    images = images[..., top : top + size, left : left + size]
    mean = device_constant(CLIP_MEAN, images.device, images.dtype).view(1, 3, 1, 1)
    std = device_constant(CLIP_STD, images.device, images.dtype).view(1, 3, 1, 1)
    return (images - mean) / std
