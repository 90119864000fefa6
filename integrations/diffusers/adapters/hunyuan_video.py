"""HunyuanVideo (``HunyuanVideoPipeline``): Llama + CLIP text, guidance-distilled flow transformer, causal 3-D VAE."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import FULL, PromptEmbeddings, VideoPipelineAdapter, check_batch, expand_timestep


class HunyuanVideoAdapter(VideoPipelineAdapter):
    """``guidance_scale`` is the distilled guidance fed to the transformer (no second pass). Real CFG
    ("true CFG") runs only with negative prompts and ``true_cfg_scale > 1``, as in the pipeline.
    ``encode_prompt`` takes ``prompt_template`` (default: the pipeline's). The VAE's group norms
    span time, so a frame subset is taken after decoding every frame."""

    family = "hunyuan-video"
    pipeline_class_names = ("HunyuanVideoPipeline",)
    frame_decoding = FULL

    def _encode_prompt(self, prompts, negative_prompts, do_cfg, max_sequence_length, **kwargs: Any) -> PromptEmbeddings:
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

        template = kwargs.get("prompt_template", DEFAULT_PROMPT_TEMPLATE)

        def encode(texts: list[str]) -> PromptEmbeddings:
            embeds, pooled, mask = self.pipe.encode_prompt(
                prompt=texts, prompt_template=template, num_videos_per_prompt=1, device=self.device,
                max_sequence_length=max_sequence_length or 256,
            )
            return PromptEmbeddings(embeds, mask, pooled)

        conditioning = encode(prompts)
        if do_cfg and negative_prompts is not None:
            conditioning.negative = encode(negative_prompts)
        return conditioning

    def set_timesteps(self, num_inference_steps, *, num_frames, height, width) -> torch.Tensor:
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import retrieve_timesteps

        sigmas = np.linspace(1.0, 0.0, num_inference_steps + 1)[:-1]
        timesteps, _ = retrieve_timesteps(self.scheduler, num_inference_steps, self.device, sigmas=sigmas)
        self.scheduler.set_begin_index(0)
        return timesteps

    def prepare_latents(self, batch_size, *, num_frames, height, width, generator=None) -> torch.Tensor:
        return self.pipe.prepare_latents(
            batch_size, self.latent_channels, height, width, num_frames, torch.float32, self.device, generator
        )

    def denoiser_forward(
        self, latents, t, prompt_embeds, guidance_scale=6.0, *, true_cfg_scale: float = 1.0, **kwargs: Any
    ) -> torch.Tensor:
        check_batch(latents, prompt_embeds)
        batch = latents.shape[0]
        guidance = torch.full((batch,), guidance_scale * 1000.0, device=self.device, dtype=self.dtype)
        timestep = expand_timestep(t, batch, self.device).to(latents.dtype)
        model_input = latents.to(self.dtype)

        def predict(embeds: PromptEmbeddings) -> torch.Tensor:
            return self.denoiser(
                hidden_states=model_input, timestep=timestep, encoder_hidden_states=embeds.embeds.to(self.device, self.dtype),
                encoder_attention_mask=embeds.attention_mask.to(self.device, self.dtype),
                pooled_projections=embeds.pooled.to(self.device, self.dtype), guidance=guidance, return_dict=False,
            )[0]

        prediction = predict(prompt_embeds)
        if prompt_embeds.negative is not None and true_cfg_scale > 1.0:
            unconditional = predict(prompt_embeds.negative)
            prediction = unconditional + true_cfg_scale * (prediction - unconditional)
        return prediction.float()

    def _vae_decode(self, latents: torch.Tensor, generator) -> torch.Tensor:
        return self.vae.decode((latents / self.vae.config.scaling_factor).to(self.vae.dtype)).sample
