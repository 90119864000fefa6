"""AnimateDiff (``AnimateDiffPipeline``): a UNet2D + motion adapter, CLIP text repeated per frame, per-frame decode."""
from __future__ import annotations

import torch

from ._unet import UNetVideoAdapter


class AnimateDiffAdapter(UNetVideoAdapter):
    """The motion UNet folds frames into the batch, so text conditioning is repeated per frame."""

    family = "animatediff"
    pipeline_class_names = ("AnimateDiffPipeline",)

    def _conditioning(self, prompt_embeds, cfg, num_frames) -> torch.Tensor:
        return super()._conditioning(prompt_embeds, cfg, num_frames).repeat_interleave(num_frames, dim=0)

    def scheduler_step(self, model_output, t, latents, *, generator=None, eta=0.0) -> torch.Tensor:
        return self.scheduler.step(model_output, t, latents, **self._extra_step_kwargs(generator, eta)).prev_sample
