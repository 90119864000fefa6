"""ModelScope text-to-video (``TextToVideoSDPipeline``): UNet3D, CLIP text, per-frame SD VAE decode."""
from __future__ import annotations

import torch

from ._unet import UNetVideoAdapter


class TextToVideoSDAdapter(UNetVideoAdapter):
    """The pipeline steps its scheduler on frames folded into the batch; so does this adapter."""

    family = "text-to-video-sd"
    pipeline_class_names = ("TextToVideoSDPipeline",)

    def scheduler_step(self, model_output, t, latents, *, generator=None, eta=0.0) -> torch.Tensor:
        batch, channels, frames, height, width = latents.shape

        def fold(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)

        stepped = self.scheduler.step(fold(model_output), t, fold(latents), **self._extra_step_kwargs(generator, eta)).prev_sample
        return stepped.reshape(batch, frames, channels, height, width).permute(0, 2, 1, 3, 4)
