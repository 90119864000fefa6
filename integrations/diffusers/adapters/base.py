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

import abc
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
FULL = "full"  # 3-D VAE not causal in time: every frame is decoded, then the selection is taken


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

    def select(self, index: slice | Sequence[int] | torch.Tensor) -> "PromptEmbeddings":
        """The conditioning of some samples (a slice or indices along the batch)."""

        def pick(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor[index]

        negative = self.negative.select(index) if self.negative is not None else None
        return replace(self, embeds=pick(self.embeds), attention_mask=pick(self.attention_mask), pooled=pick(self.pooled), negative=negative)

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


def expand_timestep(t: torch.Tensor | float, batch_size: int, device: torch.device | None = None) -> torch.Tensor:
    """One timestep per sample of a model call: a scalar is broadcast; per-sample values ``[B]`` are
    tiled over a CFG-doubled batch (``[negative; positive]`` halves get the same values)."""
    t = torch.as_tensor(t, device=device).reshape(-1)
    if t.numel() == 1:
        return t.reshape(()).expand(batch_size)
    if batch_size % t.numel():
        raise ValueError(f"got {t.numel()} timesteps for a model batch of {batch_size}; pass one per sample or a scalar")
    return t.repeat(batch_size // t.numel())


def flow_noise_levels(scheduler: Any) -> tuple[torch.Tensor, float]:
    """A flow-matching scheduler's noise level per sigma (1 = pure noise, 0 = clean) and the sign that
    turns the model's output into the velocity ``noise - x0``.

    Mochi's release scheduler (``invert_sigmas=True``) counts its sigmas from clean (1) to noise (0), and
    its transformer predicts ``x0 - noise``; every other flow scheduler uses the sigmas as noise levels.
    """
    if scheduler.config.get("invert_sigmas", False):
        return 1 - scheduler.sigmas, -1.0
    return scheduler.sigmas, 1.0


def is_scalar_timestep(t: torch.Tensor | float) -> bool:
    return torch.as_tensor(t).numel() == 1


def _as_list(prompts: Sequence[str] | str) -> list[str]:
    return [prompts] if isinstance(prompts, str) else list(prompts)


class VideoPipelineAdapter(abc.ABC):
    """Family-specific access to a diffusers text-to-video pipeline (subclass per family).

    Subclasses set ``family``, ``pipeline_class_names``, ``frame_decoding`` and the compression
    attribute names, and implement ``prepare_latents``, ``denoiser_forward`` and ``_vae_decode``
    (plus whatever of the rest differs in their family).
    Every latent tensor taken or returned is canonical ``[B, C, F_latent, h, w]``; use
    ``from_pipeline_latents`` / ``to_pipeline_latents`` to exchange latents with the pipeline.
    Nothing here disables autograd except ``encode_prompt`` (text encoders stay frozen).
    """

    family: ClassVar[str] = ""
    pipeline_class_names: ClassVar[tuple[str, ...]] = ()
    frame_decoding: ClassVar[str] = FULL
    #: Pipeline attributes holding the VAE's spatial / temporal compression (None: no temporal compression).
    spatial_compression_attribute: ClassVar[str] = "vae_scale_factor_spatial"
    temporal_compression_attribute: ClassVar[str | None] = "vae_scale_factor_temporal"
    #: Text length ``encode_prompt`` uses when none is given (the pipeline's own default).
    default_max_sequence_length: ClassVar[int] = 226

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
        return getattr(self.pipe, self.spatial_compression_attribute)

    @property
    def temporal_compression(self) -> int:
        """Video frames per latent frame after the first (1 for 2-D VAEs)."""
        name = self.temporal_compression_attribute
        return 1 if name is None else getattr(self.pipe, name)

    def num_latent_frames(self, num_frames: int) -> int:
        """Latent frames for a ``num_frames``-frame video."""
        if self.temporal_compression == 1:
            return num_frames
        return (num_frames - 1) // self.temporal_compression + 1

    def num_video_frames(self, num_latent_frames: int) -> int:
        """Frames the VAE decodes from ``num_latent_frames`` latent frames (the usual 1 + r (F - 1))."""
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
        """T5-style pipelines: ``encode_prompt`` returns ``(embeds, negative)`` or, with attention masks,
        ``(embeds, mask, negative, negative_mask)``."""
        encoded = self.pipe.encode_prompt(
            prompt=prompts, negative_prompt=negative_prompts, do_classifier_free_guidance=do_cfg,
            num_videos_per_prompt=1, max_sequence_length=max_sequence_length or self.default_max_sequence_length,
            device=self.device,
        )
        embeds, mask, negative, negative_mask = encoded if len(encoded) == 4 else (encoded[0], None, encoded[1], None)
        return PromptEmbeddings(embeds, mask, negative=PromptEmbeddings(negative, negative_mask) if do_cfg else None)

    def set_timesteps(self, num_inference_steps: int, *, num_frames: int, height: int, width: int) -> torch.Tensor:
        """Reset the pipeline's scheduler for a new trajectory and return its timesteps (as the pipeline does).

        Schedulers are stateful: call this before every trajectory and take the steps in order.
        """
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        return self.scheduler.timesteps

    @abc.abstractmethod
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

    @abc.abstractmethod
    def denoiser_forward(
        self, latents: torch.Tensor, t: torch.Tensor, prompt_embeds: PromptEmbeddings, guidance_scale: float = 1.0, **kwargs: Any
    ) -> torch.Tensor:
        """The denoiser's prediction at timestep ``t`` (CFG applied when ``prompt_embeds.negative`` is set
        and ``guidance_scale > 1``), canonical layout, float32. Differentiable w.r.t. the denoiser.

        ``t`` is a scalar or one timestep per sample ``[B]`` (DDPO re-evaluates stored trajectories).
        The scheduler's ``scale_model_input`` is applied for scalar ``t`` only; it is the identity for
        the DDIM / DPM / UniPC / flow-matching schedulers these pipelines use.
        """

    def scheduler_step(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        eta: float = 0.0,
    ) -> torch.Tensor:
        """Latents at the next timestep; scalar ``t``. ``eta`` matters for DDIM-type schedulers only.

        Stochastic steps (DDIM with ``eta > 0``, CogVideoX's DPM scheduler) draw noise from
        ``generator``: pass the generators given to ``prepare_latents`` to reproduce the pipeline.
        """
        return self.scheduler.step(model_output, t, latents, return_dict=False)[0]

    def predict_clean(self, model_output: torch.Tensor, t: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """The clean latents ``x0`` a prediction implies at scalar timestep ``t`` (one-step preview).

        Flow-matching schedulers (and UniPC with flow sigmas): ``x0 = x_t - s_t * v`` (``flow_noise_levels``); DDIM-type
        schedulers: from ``alphas_cumprod[t]`` and the ``prediction_type`` (epsilon / v / sample).
        ``t`` must be one of the timesteps of the last ``set_timesteps``.
        """
        scheduler, config = self.scheduler, self.scheduler.config
        flow = "FlowMatch" in type(scheduler).__name__ or config.get("use_flow_sigmas", False)
        if flow or config.get("prediction_type") == "flow_prediction":
            index = int((scheduler.timesteps.to(latents.device) - torch.as_tensor(t, device=latents.device)).abs().argmin())
            levels, sign = flow_noise_levels(scheduler)
            return latents - levels[index].to(latents.device) * sign * model_output
        alpha = scheduler.alphas_cumprod[int(t)].to(latents.device)
        kind = config.get("prediction_type", "epsilon")
        if kind == "epsilon":
            return (latents - (1 - alpha).sqrt() * model_output) / alpha.sqrt()
        if kind == "v_prediction":
            return alpha.sqrt() * latents - (1 - alpha).sqrt() * model_output
        if kind == "sample":
            return model_output
        raise ValueError(f"cannot preview x0 for prediction_type {kind!r} of {type(scheduler).__name__}")

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
        if self.frame_decoding == FULL:
            decoded = self._vae_decode(latents, generator)
            indices = selection.resolve(decoded.shape[2], generator=generator).to(decoded.device)
            decoded = decoded.index_select(2, indices)
        else:
            total = self.num_video_frames(latents.shape[2])
            indices = selection.resolve(total, generator=generator).to(latents.device)
            if self.frame_decoding == PER_FRAME:
                decoded = self._vae_decode(latents.index_select(2, indices), generator)
            else:
                needed = self.latent_frame_of(int(indices.max())) + 1
                decoded = self._vae_decode(latents[:, :, :needed], generator).index_select(2, indices)
        return (decoded.float().permute(0, 2, 1, 3, 4) / 2 + 0.5).clamp(0, 1)

    @abc.abstractmethod
    def _vae_decode(self, latents: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Canonical latents -> the VAE's raw output ``[B, 3, T, H, W]`` in about [-1, 1]."""
