"""LTX-Video (``LTXPipeline``): T5 text, flow matching on packed tokens, non-causal 3-D VAE with latent stats."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import FULL, VideoPipelineAdapter, check_batch, expand_timestep


class LTXAdapter(VideoPipelineAdapter):
    """The pipeline holds latents packed as tokens ``[B, S, D]``; the adapter unpacks them to canonical
    ``[B, C, F, h, w]`` and packs only around the transformer and the scheduler step.

    The LTX decoder is not causal in time, so a frame subset is taken after decoding every frame.
    ``decode_timestep`` / ``decode_noise_scale`` match the pipeline arguments of the same name
    (used by VAEs with ``timestep_conditioning``; LTX 0.9.1+ recommends 0.05 / 0.025).
    """

    family = "ltx"
    pipeline_class_names = ("LTXPipeline",)
    frame_decoding = FULL
    spatial_compression_attribute = "vae_spatial_compression_ratio"
    temporal_compression_attribute = "vae_temporal_compression_ratio"
    default_max_sequence_length = 128

    def __init__(self, pipe: Any, *, decode_timestep: float = 0.0, decode_noise_scale: float | None = None):
        super().__init__(pipe)
        self.decode_timestep = decode_timestep
        self.decode_noise_scale = decode_noise_scale

    @property
    def _patch(self) -> tuple[int, int]:
        return self.pipe.transformer_spatial_patch_size, self.pipe.transformer_temporal_patch_size

    def latent_shape(self, batch_size, *, num_frames, height, width) -> tuple[int, ...]:
        s = self.vae_spatial_compression
        return (batch_size, self.vae.config.latent_channels, self.num_latent_frames(num_frames), height // s, width // s)

    def from_pipeline_latents(self, latents, *, num_frames, height, width) -> torch.Tensor:
        if latents.ndim == 5:
            return latents
        _, _, frames, h, w = self.latent_shape(1, num_frames=num_frames, height=height, width=width)
        return self.pipe._unpack_latents(latents, frames, h, w, *self._patch)

    def to_pipeline_latents(self, latents) -> torch.Tensor:
        return self.pipe._pack_latents(latents, *self._patch)

    def set_timesteps(self, num_inference_steps, *, num_frames, height, width) -> torch.Tensor:
        """The pipeline's resolution-dependent shift ``mu`` over ``linspace(1, 1/n, n)`` sigmas."""
        from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift, retrieve_timesteps

        _, _, frames, h, w = self.latent_shape(1, num_frames=num_frames, height=height, width=width)
        config = self.scheduler.config
        mu = calculate_shift(
            frames * h * w, config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5), config.get("max_shift", 1.15),
        )
        sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        timesteps, _ = retrieve_timesteps(self.scheduler, num_inference_steps, self.device, sigmas=sigmas, mu=mu)
        return timesteps

    def prepare_latents(self, batch_size, *, num_frames, height, width, generator=None) -> torch.Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        shape = self.latent_shape(batch_size, num_frames=num_frames, height=height, width=width)
        return randn_tensor(shape, generator=generator, device=self.device, dtype=torch.float32)

    def denoiser_forward(
        self, latents, t, prompt_embeds, guidance_scale=1.0, *, frame_rate: float = 25, guidance_rescale: float = 0.0,
        **kwargs: Any,
    ) -> torch.Tensor:
        """``frame_rate`` sets the rotary time scale and ``guidance_rescale`` the CFG rescale, as in the pipeline."""
        from diffusers.pipelines.ltx.pipeline_ltx import rescale_noise_cfg

        check_batch(latents, prompt_embeds)
        cfg = self.uses_guidance(prompt_embeds, guidance_scale)
        tokens = self.to_pipeline_latents(latents)
        tokens = torch.cat([tokens, tokens]) if cfg else tokens
        negative = prompt_embeds.negative
        context = torch.cat([negative.embeds, prompt_embeds.embeds]) if cfg else prompt_embeds.embeds
        mask = torch.cat([negative.attention_mask, prompt_embeds.attention_mask]) if cfg else prompt_embeds.attention_mask
        ratio_t, ratio_s = self.temporal_compression, self.vae_spatial_compression
        prediction = self.denoiser(
            hidden_states=tokens.to(self.dtype), encoder_hidden_states=context.to(self.device, self.dtype),
            timestep=expand_timestep(t, tokens.shape[0], self.device), encoder_attention_mask=mask.to(self.device),
            num_frames=latents.shape[2], height=latents.shape[3], width=latents.shape[4],
            rope_interpolation_scale=(ratio_t / frame_rate, ratio_s, ratio_s), return_dict=False,
        )[0].float()
        if cfg:
            unconditional, conditional = prediction.chunk(2)
            prediction = unconditional + guidance_scale * (conditional - unconditional)
            if guidance_rescale > 0:
                prediction = rescale_noise_cfg(prediction, conditional, guidance_rescale=guidance_rescale)
        return self.pipe._unpack_latents(prediction, *latents.shape[2:], *self._patch)

    def scheduler_step(self, model_output, t, latents, *, generator=None, eta=0.0) -> torch.Tensor:
        stepped = self.scheduler.step(
            self.to_pipeline_latents(model_output), t, self.to_pipeline_latents(latents), generator=generator, return_dict=False
        )[0]
        return self.pipe._unpack_latents(stepped, *latents.shape[2:], *self._patch)

    def _vae_decode(self, latents: torch.Tensor, generator) -> torch.Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        latents = self.pipe._denormalize_latents(
            latents, self.vae.latents_mean, self.vae.latents_std, self.vae.config.scaling_factor
        )
        timestep = None
        if self.vae.config.timestep_conditioning:
            batch = latents.shape[0]
            noise_scale = self.decode_timestep if self.decode_noise_scale is None else self.decode_noise_scale
            noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
            latents = (1 - noise_scale) * latents + noise_scale * noise
            timestep = torch.full((batch,), self.decode_timestep, device=latents.device, dtype=latents.dtype)
        return self.vae.decode(latents.to(self.vae.dtype), timestep).sample
