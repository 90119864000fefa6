"""Mochi 1 (``MochiPipeline``): T5 text, flow matching on a linear-quadratic schedule, 3-D VAE with latent stats."""
from __future__ import annotations

from typing import Any

import torch

from .base import CAUSAL, VideoPipelineAdapter, check_batch, expand_timestep


class MochiAdapter(VideoPipelineAdapter):
    """Latents ``[B, 12, F, h, w]`` (the pipeline's layout); 6x temporal, 8x spatial compression."""

    family = "mochi"
    pipeline_class_names = ("MochiPipeline",)
    frame_decoding = CAUSAL
    spatial_compression_attribute = "vae_spatial_scale_factor"
    temporal_compression_attribute = "vae_temporal_scale_factor"
    default_max_sequence_length = 256
    #: Sigma where the pipeline's linear-quadratic schedule switches from linear to quadratic.
    threshold_noise = 0.025

    def set_timesteps(self, num_inference_steps, *, num_frames, height, width) -> torch.Tensor:
        from diffusers.pipelines.mochi.pipeline_mochi import linear_quadratic_schedule, retrieve_timesteps

        sigmas = linear_quadratic_schedule(num_inference_steps, self.threshold_noise)
        timesteps, _ = retrieve_timesteps(self.scheduler, num_inference_steps, self.device, None, sigmas)
        self.scheduler.set_begin_index(0)
        return timesteps

    def prepare_latents(self, batch_size, *, num_frames, height, width, generator=None) -> torch.Tensor:
        return self.pipe.prepare_latents(
            batch_size, self.latent_channels, height, width, num_frames, torch.float32, self.device, generator
        )

    def denoiser_forward(self, latents, t, prompt_embeds, guidance_scale=1.0, **kwargs: Any) -> torch.Tensor:
        check_batch(latents, prompt_embeds)
        cfg = self.uses_guidance(prompt_embeds, guidance_scale)
        model_input = torch.cat([latents, latents]) if cfg else latents
        negative = prompt_embeds.negative
        context = torch.cat([negative.embeds, prompt_embeds.embeds]) if cfg else prompt_embeds.embeds
        mask = torch.cat([negative.attention_mask, prompt_embeds.attention_mask]) if cfg else prompt_embeds.attention_mask
        prediction = self.denoiser(
            hidden_states=model_input.to(self.dtype), encoder_hidden_states=context.to(self.device, self.dtype),
            timestep=expand_timestep(t, model_input.shape[0], self.device).to(latents.dtype), encoder_attention_mask=mask.to(self.device),
            return_dict=False,
        )[0].float()
        if cfg:
            unconditional, conditional = prediction.chunk(2)
            prediction = unconditional + guidance_scale * (conditional - unconditional)
        return prediction

    def _vae_decode(self, latents: torch.Tensor, generator) -> torch.Tensor:
        config = self.vae.config
        if getattr(config, "latents_mean", None) is not None and getattr(config, "latents_std", None) is not None:
            mean = torch.tensor(config.latents_mean, device=latents.device).view(1, -1, 1, 1, 1)
            std = torch.tensor(config.latents_std, device=latents.device).view(1, -1, 1, 1, 1)
            latents = latents * std / config.scaling_factor + mean
        else:
            latents = latents / config.scaling_factor
        return self.vae.decode(latents.to(self.vae.dtype)).sample
