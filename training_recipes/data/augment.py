"""PCQA training augmentations: horizontal flip, a slight resized crop, brightness and contrast.

The same draw applies to every frame of a video (so motion is untouched), and draws come from
a generator the caller seeds per (epoch, item): augmentation is reproducible and resumable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from reward.video.resize import resize_frames

LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class VideoAugment:
    """``hflip``: flip probability; ``crop_scale``: kept area range; ``brightness``/``contrast``: +- factor range."""

    hflip: float = 0.5
    crop_scale: tuple[float, float] = (0.85, 1.0)
    brightness: float = 0.1
    contrast: float = 0.1

    def __post_init__(self) -> None:
        low, high = self.crop_scale
        if not (0 < low <= high <= 1) or not (0 <= self.hflip <= 1) or min(self.brightness, self.contrast) < 0:
            raise ValueError(f"invalid augmentation settings {self}; need 0 < crop_scale[0] <= crop_scale[1] <= 1")

    def __call__(self, video: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment ``video`` [T, 3, H, W] in [0, 1]; the output has the same shape and range."""

        def uniform(low: float, high: float) -> float:
            return low + (high - low) * float(torch.rand((), generator=generator))

        height, width = video.shape[-2:]
        if uniform(0, 1) < self.hflip:
            video = video.flip(-1)
        scale = uniform(*self.crop_scale)
        crop_h, crop_w = max(1, round(height * math.sqrt(scale))), max(1, round(width * math.sqrt(scale)))
        top = int(torch.randint(0, height - crop_h + 1, (), generator=generator))
        left = int(torch.randint(0, width - crop_w + 1, (), generator=generator))
        video = resize_frames(video[..., top : top + crop_h, left : left + crop_w], (height, width))
        video = video * uniform(1 - self.brightness, 1 + self.brightness)
        luma = (video * video.new_tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True).mean()
        video = (video - luma) * uniform(1 - self.contrast, 1 + self.contrast) + luma
        return video.clamp(0, 1)
