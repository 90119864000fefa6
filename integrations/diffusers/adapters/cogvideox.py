"""CogVideoX 1.0 / 1.5 (``CogVideoXPipeline``): T5 text, DDIM or DPM schedulers, causal 3-D VAE, 1/scaling_factor."""
from __future__ import annotations

from typing import Any

import torch

from .base import FULL, VideoPipelineAdapter, check_batch, expand_timestep, is_scalar_timestep


class CogVideoXAdapter(VideoPipelineAdapter):
    """The pipeline keeps latents as ``[B, F, C, h, w]``; this adapter converts to and from canonical.

    Its VAE decodes latent frames in chunks with group norms over time, so a frame subset is taken
    after decoding every frame (an even latent count decodes to 4F frames, an odd one to 4F - 3).
    CogVideoX 1.5 pads the latent frames to a multiple of ``patch_size_t`` at the front; pass
    ``num_frames`` to ``decode`` to drop that padding as the pipeline does. Dynamic CFG
    (``use_dynamic_cfg``) is not reproduced: ``denoiser_forward`` uses the constant scale given.
    """

    family = "cogvideox"
    pipeline_class_names = ("CogVideoXPipeline",)
    frame_decoding = FULL

    def __init__(self, pipe: Any):
        super().__init__(pipe)
        self._dpm_history: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)

    def padding_latent_frames(self, num_frames: int) -> int:
        """Latent frames CogVideoX 1.5 prepends so the count divides ``patch_size_t`` (0 for 1.0)."""
        patch_t = self.denoiser.config.patch_size_t
        latent_frames = self.num_latent_frames(num_frames)
        return 0 if patch_t is None or latent_frames % patch_t == 0 else patch_t - latent_frames % patch_t

    def from_pipeline_latents(self, latents, *, num_frames, height, width) -> torch.Tensor:
        return latents.permute(0, 2, 1, 3, 4)

    def to_pipeline_latents(self, latents) -> torch.Tensor:
        return latents.permute(0, 2, 1, 3, 4)

    def set_timesteps(self, num_inference_steps, *, num_frames, height, width) -> torch.Tensor:
        self._dpm_history = (None, None)
        return super().set_timesteps(num_inference_steps, num_frames=num_frames, height=height, width=width)

    def latent_shape(self, batch_size, *, num_frames, height, width) -> tuple[int, ...]:
        batch, channels, frames, h, w = super().latent_shape(batch_size, num_frames=num_frames, height=height, width=width)
        return (batch, channels, frames + self.padding_latent_frames(num_frames), h, w)

    def prepare_latents(self, batch_size, *, num_frames, height, width, generator=None) -> torch.Tensor:
        padded_frames = num_frames + self.padding_latent_frames(num_frames) * self.temporal_compression
        latents = self.pipe.prepare_latents(
            batch_size, self.latent_channels, padded_frames, height, width, torch.float32, self.device, generator
        )
        return self.from_pipeline_latents(latents, num_frames=num_frames, height=height, width=width)

    def denoiser_forward(self, latents, t, prompt_embeds, guidance_scale=1.0, **kwargs: Any) -> torch.Tensor:
        check_batch(latents, prompt_embeds)
        cfg = self.uses_guidance(prompt_embeds, guidance_scale)
        model_input = self.to_pipeline_latents(latents)
        model_input = torch.cat([model_input, model_input]) if cfg else model_input
        if is_scalar_timestep(t):
            model_input = self.scheduler.scale_model_input(model_input, t)
        context = torch.cat([prompt_embeds.negative.embeds, prompt_embeds.embeds]) if cfg else prompt_embeds.embeds
        rotary = None
        if self.denoiser.config.use_rotary_positional_embeddings:
            s = self.vae_spatial_compression
            rotary = self.pipe._prepare_rotary_positional_embeddings(
                latents.shape[3] * s, latents.shape[4] * s, latents.shape[2], self.device
            )
        prediction = self.denoiser(
            hidden_states=model_input.to(self.dtype), encoder_hidden_states=context.to(self.device, self.dtype),
            timestep=expand_timestep(t, model_input.shape[0], self.device), image_rotary_emb=rotary, return_dict=False,
        )[0].float()
        if cfg:
            unconditional, conditional = prediction.chunk(2)
            prediction = unconditional + guidance_scale * (conditional - unconditional)
        return self.from_pipeline_latents(prediction, num_frames=0, height=0, width=0)

    def scheduler_step(self, model_output, t, latents, *, generator=None, eta=0.0) -> torch.Tensor:
        """Steps in the pipeline's layout (stochastic schedulers draw noise of that shape). DDIM-type
        schedulers step directly; ``CogVideoXDPMScheduler`` also needs the previous step, which the
        adapter remembers between calls (reset by ``set_timesteps``)."""
        from diffusers import CogVideoXDPMScheduler

        extra = self.pipe.prepare_extra_step_kwargs(generator, eta)
        output, sample = self.to_pipeline_latents(model_output), self.to_pipeline_latents(latents)
        if not isinstance(self.scheduler, CogVideoXDPMScheduler):
            stepped = self.scheduler.step(output, t, sample, **extra, return_dict=False)[0]
        else:
            previous_prediction, previous_t = self._dpm_history
            stepped, prediction = self.scheduler.step(
                output, previous_prediction, t, previous_t, sample, **extra, return_dict=False
            )
            self._dpm_history = (prediction, t)
        return self.from_pipeline_latents(stepped, num_frames=0, height=0, width=0)

    def decode(self, latents, frames=None, *, generator=None, num_frames: int | None = None) -> torch.Tensor:
        """As ``VideoPipelineAdapter.decode``; ``num_frames`` (CogVideoX 1.5) drops the leading padding frames."""
        if num_frames is not None:
            latents = latents[:, :, self.padding_latent_frames(num_frames) :]
        return super().decode(latents, frames, generator=generator)

    def _vae_decode(self, latents: torch.Tensor, generator) -> torch.Tensor:
        return self.vae.decode((latents / self.vae.config.scaling_factor).to(self.vae.dtype)).sample
