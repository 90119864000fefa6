"""Wan 2.x (``WanPipeline``): UMT5 text, flow-matching transformer(s), causal 3-D VAE with per-channel latent stats."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import CAUSAL, PromptEmbeddings, VideoPipelineAdapter, check_batch, expand_timestep, is_scalar_timestep


class WanAdapter(VideoPipelineAdapter):
    """Wan 2.1 and 2.2 text-to-video, including the two-expert (``transformer_2`` + ``boundary_ratio``)
    and expanded-timestep variants. Decoding a frame prefix only runs the VAE over the latent prefix
    (the Wan VAE is causal in time)."""

    family = "wan"
    pipeline_class_names = ("WanPipeline",)
    frame_decoding = CAUSAL
    default_max_sequence_length = 512

    @property
    def denoiser(self) -> nn.Module:
        return self.pipe.transformer if self.pipe.transformer is not None else self.pipe.transformer_2

    def set_timesteps(self, num_inference_steps, *, num_frames, height, width) -> torch.Tensor:
        timesteps = super().set_timesteps(num_inference_steps, num_frames=num_frames, height=height, width=width)
        self.scheduler.set_begin_index(0)
        return timesteps

    def prepare_latents(self, batch_size, *, num_frames, height, width, generator=None) -> torch.Tensor:
        return self.pipe.prepare_latents(
            batch_size, self.latent_channels, height, width, num_frames, torch.float32, self.device, generator
        )

    def _expert(self, t: torch.Tensor, guidance_scale: float, guidance_scale_2: float | None) -> tuple[nn.Module, float]:
        """Wan 2.2 uses ``transformer`` above the boundary timestep and ``transformer_2`` below it."""
        ratio = self.pipe.config.boundary_ratio
        if ratio is not None and not is_scalar_timestep(t):
            raise ValueError("two-expert Wan (boundary_ratio set) picks its expert per step: pass a scalar timestep")
        if ratio is None or float(t) >= ratio * self.scheduler.config.num_train_timesteps:
            return self.pipe.transformer, guidance_scale
        return self.pipe.transformer_2, guidance_scale if guidance_scale_2 is None else guidance_scale_2

    def _timestep(self, t: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``[B]``, or ``[B, tokens]`` for Wan 2.2 TI2V's per-token timesteps (``expand_timesteps``)."""
        per_sample = expand_timestep(t, latents.shape[0], self.device)
        if not self.pipe.config.expand_timesteps:
            return per_sample
        _, patch_h, patch_w = self.denoiser.config.patch_size
        tokens = latents.shape[2] * (latents.shape[3] // patch_h) * (latents.shape[4] // patch_w)
        return per_sample[:, None].expand(latents.shape[0], tokens)

    def denoiser_forward(
        self, latents, t, prompt_embeds, guidance_scale=1.0, *, guidance_scale_2: float | None = None, **kwargs: Any
    ) -> torch.Tensor:
        """``guidance_scale_2`` is the low-noise expert's scale (Wan 2.2; defaults to ``guidance_scale``)."""
        check_batch(latents, prompt_embeds)
        model, scale = self._expert(t, guidance_scale, guidance_scale_2)
        model_input = latents.to(model.dtype)
        timestep = self._timestep(t, latents)

        def predict(embeds: PromptEmbeddings) -> torch.Tensor:
            context = embeds.embeds.to(self.device, model.dtype)
            return model(hidden_states=model_input, timestep=timestep, encoder_hidden_states=context, return_dict=False)[0]

        prediction = predict(prompt_embeds)
        if self.uses_guidance(prompt_embeds, scale):
            unconditional = predict(prompt_embeds.negative)
            prediction = unconditional + scale * (prediction - unconditional)
        return prediction.float()

    def _vae_decode(self, latents: torch.Tensor, generator) -> torch.Tensor:
        config = self.vae.config
        mean = torch.tensor(config.latents_mean, device=latents.device).view(1, config.z_dim, 1, 1, 1)
        std = torch.tensor(config.latents_std, device=latents.device).view(1, config.z_dim, 1, 1, 1)
        return self.vae.decode((latents * std + mean).to(self.vae.dtype)).sample
