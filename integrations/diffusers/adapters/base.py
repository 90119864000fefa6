"""The family adapter interface: what reward best-of-N and fine-tuning need from a diffusers video pipeline.

Pipelines' ``__call__`` runs under ``no_grad`` and hides each family's latent layout and latent
(un)normalisation. An adapter exposes the pieces of the denoising loop and a differentiable decode,
with one latent layout for every family: ``[B, C, F_latent, h, w]`` float32 (called "canonical"
below). A reward fine-tuning loop reads::

    adapter = adapter_for(pipe)
    cond = adapter.encode_prompt(prompts, do_classifier_free_guidance=True)
    timesteps = adapter.set_timesteps(steps, num_frames=F, height=H, width=W)
    latents = adapter.prepare_latents(len(prompts), num_frames=F, height=H, width=W, generator=g)
    for t in timesteps:
        model_output = adapter.denoiser_forward(latents, t, cond, guidance_scale=5.0)
        latents = adapter.scheduler_step(model_output, t, latents, generator=g)
    videos = adapter.decode(latents, frames=FrameSelection.uniform(4))   # [B, 4, 3, H, W], with grad
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import nn

from ..frames import FrameSelection, as_frame_selection
from ..outputs import to_videos

#: How a family's VAE can decode a subset of frames (class attribute ``frame_decoding``).
PER_FRAME = "per-frame"  # 2-D VAE on each latent frame: only the selected frames are decoded
CAUSAL = "causal"  # causal 3-D VAE: the latent prefix up to the last selected frame is decoded
FULL = "full"  # non-causal 3-D VAE: every frame is decoded, then the selection is taken


class UnsupportedPipelineError(TypeError):
    """The pipeline class has no family adapter."""


@dataclass
class PromptEmbeddings:
    """Text conditioning as a family's denoiser consumes it (``negative`` is the CFG branch, if any)."""

    embeds: torch.Tensor
    attention_mask: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    negative: "PromptEmbeddings | None" = None

    @property
    def batch_size(self) -> int:
        return self.embeds.shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "PromptEmbeddings":
        """Move every tensor (masks keep their dtype unless floating)."""

        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            if tensor is None:
                return None
            return tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else None)

        return PromptEmbeddings(
            move(self.embeds), move(self.attention_mask), move(self.pooled),
            self.negative.to(device, dtype) if self.negative is not None else None,
        )

    def repeat(self, times: int) -> "PromptEmbeddings":
        """Each prompt ``times`` times in a row (``repeat_interleave``), for several samples per prompt."""

        def rep(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.repeat_interleave(times, dim=0)

        negative = self.negative.repeat(times) if self.negative is not None else None
        return replace(self, embeds=rep(self.embeds), attention_mask=rep(self.attention_mask), pooled=rep(self.pooled), negative=negative)


def check_batch(latents: torch.Tensor, prompt_embeds: PromptEmbeddings) -> None:
    """Latents and conditioning must describe the same number of samples."""
    if latents.shape[0] != prompt_embeds.batch_size:
        raise ValueError(
            f"latents hold {latents.shape[0]} samples but prompt_embeds {prompt_embeds.batch_size}; "
            "use prompt_embeds.repeat(k) for k samples per prompt"
        )


def _as_list(prompts: Sequence[str] | str) -> list[str]:
    return [prompts] if isinstance(prompts, str) else list(prompts)


class VideoPipelineAdapter:
    """Family-specific access to a diffusers text-to-video pipeline (subclass per family).

    Subclasses set ``family``, ``pipeline_class_names``, ``frame_decoding`` and
    ``temporal_compression``, and implement the ``_``-prefixed hooks plus the loop pieces.
    Every latent tensor taken or returned is canonical ``[B, C, F_latent, h, w]``; use
    ``from_pipeline_latents`` / ``to_pipeline_latents`` to exchange latents with the pipeline.
    Nothing here disables autograd except ``encode_prompt`` (text encoders stay frozen).
    """

    family: ClassVar[str] = ""
    pipeline_class_names: ClassVar[tuple[str, ...]] = ()
    frame_decoding: ClassVar[str] = FULL
    #: Video frames per latent frame after the first (1 for 2-D VAEs).
    temporal_compression: ClassVar[int] = 1

    def __init__(self, pipe: Any):
        self.pipe = pipe

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.pipe).__name__}, frame_decoding={self.frame_decoding!r})"

    # -- components --------------------------------------------------------------------------
    @property
    def denoiser(self) -> nn.Module:
        """The network a fine-tuning run trains (UNet or transformer), e.g. the LoRA target."""
        return self.pipe.unet if getattr(self.pipe, "unet", None) is not None else self.pipe.transformer

    @property
    def vae(self) -> nn.Module:
        return self.pipe.vae

    @property
    def scheduler(self) -> Any:
        return self.pipe.scheduler

    @property
    def device(self) -> torch.device:
        return self.pipe._execution_device

    @property
    def dtype(self) -> torch.dtype:
        """The denoiser's parameter dtype (inputs are cast to it)."""
        return self.denoiser.dtype

    # -- geometry ----------------------------------------------------------------------------
    @property
    def vae_spatial_compression(self) -> int:
        return self.pipe.vae_scale_factor

    def num_latent_frames(self, num_frames: int) -> int:
        """Latent frames for a ``num_frames``-frame video."""
        if self.temporal_compression == 1:
            return num_frames
        return (num_frames - 1) // self.temporal_compression + 1

    def num_video_frames(self, num_latent_frames: int) -> int:
        """Frames the VAE decodes from ``num_latent_frames`` latent frames."""
        if self.temporal_compression == 1:
            return num_latent_frames
        return (num_latent_frames - 1) * self.temporal_compression + 1

    def latent_frame_of(self, frame_index: int) -> int:
        """The latent frame a video frame is decoded from (the last one it depends on, for causal VAEs)."""
        if self.temporal_compression == 1 or frame_index == 0:
            return frame_index
        return (frame_index - 1) // self.temporal_compression + 1

    @property
    def latent_channels(self) -> int:
        return self.denoiser.config.in_channels

    def latent_shape(self, batch_size: int, *, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        """Canonical latent shape ``(B, C, F_latent, h, w)`` for a generation of this size."""
        s = self.vae_spatial_compression
        return (batch_size, self.latent_channels, self.num_latent_frames(num_frames), height // s, width // s)

    # -- outputs -----------------------------------------------------------------------------
    def videos_from_output(self, output: Any) -> torch.Tensor:
        """``videos [B, T, 3, H, W]`` in [0, 1] from any output of the pipeline (pt / np / pil / tuple)."""
        return to_videos(output)

    def from_pipeline_latents(self, latents: torch.Tensor, *, num_frames: int, height: int, width: int) -> torch.Tensor:
        """Canonical latents from what the pipeline returns with ``output_type="latent"``."""
        return latents

    def to_pipeline_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """The pipeline's own layout of canonical latents (for its ``latents=`` argument)."""
        return latents

    # -- denoising loop ------------------------------------------------------------------------
    def encode_prompt(
        self,
        prompts: Sequence[str] | str,
        negative_prompts: Sequence[str] | str | None = None,
        *,
        do_classifier_free_guidance: bool = True,
        max_sequence_length: int | None = None,
        **kwargs: Any,
    ) -> PromptEmbeddings:
        """Text conditioning for one sample per prompt, without gradients (frozen text encoders).

        ``negative`` holds the unconditional branch when ``do_classifier_free_guidance``
        (negative prompts default to ""). ``max_sequence_length`` applies to T5-style encoders.
        """
        prompts = _as_list(prompts)
        if negative_prompts is not None:
            negative_prompts = _as_list(negative_prompts)
            if len(negative_prompts) == 1 and len(prompts) > 1:
                negative_prompts = negative_prompts * len(prompts)
            if len(negative_prompts) != len(prompts):
                raise ValueError(f"got {len(negative_prompts)} negative prompts for {len(prompts)} prompts")
        with torch.no_grad():
            return self._encode_prompt(prompts, negative_prompts, do_classifier_free_guidance, max_sequence_length, **kwargs)

    def _encode_prompt(
        self, prompts: list[str], negative_prompts: list[str] | None, do_cfg: bool, max_sequence_length: int | None, **kwargs: Any
    ) -> PromptEmbeddings:
        raise NotImplementedError

    def set_timesteps(self, num_inference_steps: int, *, num_frames: int, height: int, width: int) -> torch.Tensor:
        """Reset the pipeline's scheduler for a new trajectory and return its timesteps (as the pipeline does).

        Schedulers are stateful: call this before every trajectory and take the steps in order.
        """
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        return self.scheduler.timesteps

    def prepare_latents(
        self,
        batch_size: int,
        *,
        num_frames: int,
        height: int,
        width: int,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """Initial noise, canonical layout, scaled as the scheduler expects.

        A list of generators (one per sample) gives each sample the noise it would get alone,
        so a sample is reproducible whatever the batch it was drawn in.
        """
        raise NotImplementedError

    def denoiser_forward(
        self, latents: torch.Tensor, t: torch.Tensor, prompt_embeds: PromptEmbeddings, guidance_scale: float = 1.0, **kwargs: Any
    ) -> torch.Tensor:
        """The denoiser's prediction at timestep ``t`` (CFG applied when ``prompt_embeds.negative`` is set
        and ``guidance_scale > 1``), canonical layout, float32. Differentiable w.r.t. the denoiser."""
        raise NotImplementedError

    def scheduler_step(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        eta: float = 0.0,
    ) -> torch.Tensor:
        """Latents at the next timestep (``eta`` only matters for DDIM-type schedulers)."""
        return self.scheduler.step(model_output, t, latents, return_dict=False)[0]

    @staticmethod
    def uses_guidance(prompt_embeds: PromptEmbeddings, guidance_scale: float) -> bool:
        return prompt_embeds.negative is not None and guidance_scale > 1.0

    # -- decoding ----------------------------------------------------------------------------
    def decode(
        self,
        latents: torch.Tensor,
        frames: FrameSelection | Sequence[int] | torch.Tensor | str | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Canonical latents -> ``videos [B, T, 3, H, W]`` float32 in [0, 1], differentiable.

        Applies the family's latent un-normalisation and VAE call, then the pipelines' own
        ``(x / 2 + 0.5).clamp(0, 1)``. ``frames`` selects which frames to return (default all);
        per ``frame_decoding`` only the needed latent frames are decoded. ``generator`` draws
        random frame subsets (and decode noise where the VAE uses it).
        """
        if latents.ndim != 5:
            raise ValueError(
                f"latents must be canonical [B, C, F, h, w], got shape {tuple(latents.shape)}; "
                "convert pipeline latents with adapter.from_pipeline_latents(...)"
            )
        selection = as_frame_selection(frames)
        total = self.num_video_frames(latents.shape[2])
        indices = selection.resolve(total, generator=generator).to(latents.device)
        if self.frame_decoding == PER_FRAME:
            decoded = self._vae_decode(latents.index_select(2, indices), generator)
        elif self.frame_decoding == CAUSAL:
            needed = self.latent_frame_of(int(indices.max())) + 1
            decoded = self._vae_decode(latents[:, :, :needed], generator).index_select(2, indices)
        else:
            decoded = self._vae_decode(latents, generator).index_select(2, indices)
        return (decoded.float().permute(0, 2, 1, 3, 4) / 2 + 0.5).clamp(0, 1)

    def _vae_decode(self, latents: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Canonical latents -> the VAE's raw output ``[B, 3, T, H, W]`` in about [-1, 1]."""
        raise NotImplementedError
