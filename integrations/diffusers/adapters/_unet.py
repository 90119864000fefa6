"""Shared pieces of the UNet video families (ModelScope TextToVideoSD, AnimateDiff): CLIP text, DDIM-style
schedulers, and a 2-D VAE applied to every latent frame."""
from __future__ import annotations

from typing import Any

import torch

from .base import PER_FRAME, PromptEmbeddings, VideoPipelineAdapter, check_batch, expand_timestep, is_scalar_timestep


class UNetVideoAdapter(VideoPipelineAdapter):
    """Latents ``[B, 4, F, h, w]`` (the pipeline's own layout); one video frame per latent frame."""

    frame_decoding = PER_FRAME
    spatial_compression_attribute = "vae_scale_factor"
    temporal_compression_attribute = None
    #: Latent frames per VAE call (the AnimateDiff pipeline's default ``decode_chunk_size``).
    decode_chunk_size = 16

    def _encode_prompt(self, prompts, negative_prompts, do_cfg, max_sequence_length, **kwargs: Any) -> PromptEmbeddings:
        embeds, negative = self.pipe.encode_prompt(
            prompts, self.device, 1, do_cfg, negative_prompts, clip_skip=kwargs.get("clip_skip")
        )
        return PromptEmbeddings(embeds, negative=PromptEmbeddings(negative) if do_cfg else None)

    def prepare_latents(self, batch_size, *, num_frames, height, width, generator=None) -> torch.Tensor:
        return self.pipe.prepare_latents(
            batch_size, self.latent_channels, num_frames, height, width, torch.float32, self.device, generator
        )

    def _conditioning(self, prompt_embeds: PromptEmbeddings, cfg: bool, num_frames: int) -> torch.Tensor:
        """Encoder hidden states for one UNet call: ``[negative; positive]`` when guiding."""
        return torch.cat([prompt_embeds.negative.embeds, prompt_embeds.embeds]) if cfg else prompt_embeds.embeds

    def denoiser_forward(self, latents, t, prompt_embeds, guidance_scale=1.0, **kwargs: Any) -> torch.Tensor:
        check_batch(latents, prompt_embeds)
        cfg = self.uses_guidance(prompt_embeds, guidance_scale)
        model_input = torch.cat([latents, latents]) if cfg else latents
        if is_scalar_timestep(t):
            model_input = self.scheduler.scale_model_input(model_input, t)
        context = self._conditioning(prompt_embeds, cfg, latents.shape[2]).to(self.device, self.dtype)
        timestep = expand_timestep(t, model_input.shape[0], self.device)
        prediction = self.denoiser(model_input.to(self.dtype), timestep, encoder_hidden_states=context, return_dict=False)[0]
        prediction = prediction.float()
        if cfg:
            unconditional, conditional = prediction.chunk(2)
            prediction = unconditional + guidance_scale * (conditional - unconditional)
        return prediction

    def _extra_step_kwargs(self, generator, eta) -> dict[str, Any]:
        return self.pipe.prepare_extra_step_kwargs(generator, eta)

    def _vae_decode(self, latents: torch.Tensor, generator) -> torch.Tensor:
        batch, channels, frames, height, width = latents.shape
        flat = (latents / self.vae.config.scaling_factor).permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)
        flat = flat.to(self.vae.dtype)
        images = torch.cat([
            self.vae.decode(flat[start : start + self.decode_chunk_size]).sample
            for start in range(0, flat.shape[0], self.decode_chunk_size)
        ])
        return images.reshape(batch, frames, *images.shape[1:]).permute(0, 2, 1, 3, 4)

