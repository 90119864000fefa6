"""The denoising loop inference-time search runs on a family adapter, one particle at a time.

Each step predicts the clean latents ``x0`` from the current latents (one counted denoiser call;
a CFG pair counts as one) and moves to the next noise level of the pipeline's schedule::

    eps    = (x_k - a_k * x0) / s_k                      x_k = a_k * x0 + s_k * eps
    x_k+1  = a_k+1 * x0 + s_k+1 * eps                    (deterministic)
    x_k+1  = a_k+1 * x0 + s_k+1 * (sqrt(1 - l^2) eps + l z)   (a resampled duplicate, fresh z)

with ``a = sqrt(alphas_cumprod), s = sqrt(1 - alphas_cumprod)`` for DDIM-type schedulers and
``a = 1 - sigma, s = sigma`` for flow matching: the DDIM (eta = 0) and Euler steps these pipelines
take, and the first-order counterpart of multistep schedulers (UniPC, DPM-Solver) on their
timesteps. The ``x0`` of every step is the preview a search scores, so previews cost no extra
denoiser call. Every particle is computed on its own (``batch_size`` only groups denoiser calls),
so a video regenerated alone from its lineage (``regenerate``) is the same bit for bit.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from .adapters import UnsupportedPipelineError, VideoPipelineAdapter, adapter_for, supported_pipelines
from .adapters.base import flow_noise_levels
from .frames import FrameSelection
from .lineage import Lineage, Resampled
from .pruning import _call_default

#: Pipeline arguments the search understands (everything else is refused with this list).
SEARCH_KWARGS = (
    "num_inference_steps", "num_frames", "height", "width", "guidance_scale", "negative_prompt",
    "max_sequence_length", "prompt_template",
)

T = TypeVar("T")


class UnsupportedSearchError(ValueError):
    """The pipeline or its scheduler cannot run the search's loop (no clean-latent prediction)."""


@dataclass(frozen=True)
class NoiseLevels:
    """``x_k = signal[k] * x0 + noise[k] * eps`` at step ``k`` of ``T`` (``k = T``: the end of sampling)."""

    signal: tuple[float, ...]
    noise: tuple[float, ...]


def _is_flow(scheduler: Any) -> bool:
    config = scheduler.config
    return (
        "FlowMatch" in type(scheduler).__name__ or bool(config.get("use_flow_sigmas", False))
        or config.get("prediction_type") == "flow_prediction"
    )


def noise_levels(scheduler: Any) -> NoiseLevels:
    """The noise levels of the scheduler's current timesteps (after ``set_timesteps``) and the clean end."""
    steps = len(scheduler.timesteps)
    if _is_flow(scheduler):
        sigmas = [float(s) for s in flow_noise_levels(scheduler)[0][: steps + 1]]
        if len(sigmas) == steps:
            sigmas.append(0.0)
        return NoiseLevels(tuple(1 - s for s in sigmas), tuple(sigmas))
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None or float(getattr(scheduler, "init_noise_sigma", 1.0)) != 1.0:
        raise UnsupportedSearchError(
            f"the search steps on a DDIM-type or flow-matching noise schedule; {type(scheduler).__name__} is "
            "neither. Swap it first, e.g. pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)"
        )
    final = float(getattr(scheduler, "final_alpha_cumprod", 1.0))
    cumulative = [float(alphas[int(t)]) for t in scheduler.timesteps] + [final]
    return NoiseLevels(tuple(math.sqrt(a) for a in cumulative), tuple(math.sqrt(1 - a) for a in cumulative))


def search_adapter(pipe: Any) -> VideoPipelineAdapter:
    """The family adapter of ``pipe``; a pipeline without one gets an error naming those that have one."""
    try:
        return adapter_for(pipe)
    except UnsupportedPipelineError:
        raise UnsupportedSearchError(
            f"{type(pipe).__name__} cannot be searched: the search needs a family adapter that predicts clean "
            f"latents, and only these pipelines have one: {', '.join(supported_pipelines())}"
        ) from None


def generation_settings(pipe: Any, pipe_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Every generation argument as the search uses it: given, or the pipeline's ``__call__`` default."""
    unknown = sorted(set(pipe_kwargs) - set(SEARCH_KWARGS))
    if unknown:
        raise ValueError(f"the search does not take the pipeline argument(s) {unknown}; it accepts {list(SEARCH_KWARGS)}")
    settings = {name: _call_default(pipe, name, pipe_kwargs) for name in SEARCH_KWARGS}
    missing = [name for name in ("num_inference_steps", "num_frames", "height", "width") if settings[name] is None]
    if missing:
        raise ValueError(f"{type(pipe).__name__} has no default for {missing}: pass them")
    return settings


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


class Sampler:
    """One prompt's denoising loop: conditioning encoded once, particles ``[1, C, F, h, w]``, counted calls."""

    def __init__(self, pipe: Any, prompt: str, pipe_kwargs: dict[str, Any], *, batch_size: int = 1):
        self.adapter = search_adapter(pipe)
        settings = generation_settings(pipe, pipe_kwargs)
        self.size = {name: int(settings[name]) for name in ("num_frames", "height", "width")}
        self.steps = int(settings["num_inference_steps"])
        self.guidance = float(settings["guidance_scale"] if settings["guidance_scale"] is not None else 1.0)
        self.batch_size = batch_size
        encode_kwargs = {"negative_prompts": settings["negative_prompt"], "max_sequence_length": settings["max_sequence_length"]}
        if settings["prompt_template"] is not None:
            encode_kwargs["prompt_template"] = settings["prompt_template"]
        self.conditioning = self.adapter.encode_prompt([prompt], do_classifier_free_guidance=self.guidance > 1, **encode_kwargs)
        self.timesteps = self.adapter.set_timesteps(self.steps, **self.size)
        self.levels = noise_levels(self.adapter.scheduler)
        self.denoiser_calls = 0

    def draw(self, seed: int) -> torch.Tensor:
        """Unit Gaussian latents from a CPU generator seeded with ``seed`` (the pipeline's own initial noise)."""
        return self.adapter.prepare_latents(1, generator=torch.Generator().manual_seed(seed), **self.size)

    def initial(self, lineage: Lineage) -> torch.Tensor:
        """The initial noise of ``lineage``: its seed's noise moved by each noise-search step in turn."""
        latents = self.draw(lineage.seed)
        for move in lineage.moves:
            latents = math.sqrt(1 - move.radius**2) * latents + move.radius * self.draw(move.seed)
        return latents

    @torch.no_grad()
    def predict_clean(self, particles: Sequence[torch.Tensor], index: int) -> list[torch.Tensor]:
        """The clean latents each particle's prediction at step ``index`` implies (``len(particles)`` calls)."""
        t = self.timesteps[index]
        clean: list[torch.Tensor] = []
        for group in chunked(particles, self.batch_size):
            batch = torch.cat(group)
            prediction = self.adapter.denoiser_forward(batch, t, self.conditioning.repeat(len(group)), self.guidance)
            self.denoiser_calls += len(group)
            clean += [self.adapter.predict_clean(p[None], t, x) for p, x in zip(prediction, group)]
        return clean

    def step(
        self, latents: torch.Tensor, clean: torch.Tensor, index: int, fresh: torch.Tensor | None = None, strength: float = 0.0
    ) -> torch.Tensor:
        """Latents at step ``index + 1``; ``fresh`` noise replaces the ``strength`` share of the implied noise."""
        noise = (latents - self.levels.signal[index] * clean) / self.levels.noise[index]
        if fresh is not None:
            noise = math.sqrt(1 - strength**2) * noise + strength * fresh
        return self.levels.signal[index + 1] * clean + self.levels.noise[index + 1] * noise

    def advance(self, particles: list[torch.Tensor], start: int, stop: int, on_step: Callable | None = None) -> list[torch.Tensor]:
        """Deterministic steps ``start .. stop - 1`` for every particle; ``on_step(index, clean)`` sees each prediction."""
        for index in range(start, stop):
            clean = self.predict_clean(particles, index)
            if on_step is not None:
                on_step(index, clean)
            particles = [self.step(x, c, index) for x, c in zip(particles, clean)]
        return particles

    @torch.no_grad()
    def decode(self, latents: Sequence[torch.Tensor], frames: FrameSelection | None = None) -> list[torch.Tensor]:
        """Videos ``[T, 3, H, W]`` in [0, 1] (all frames, or ``frames``) of canonical latents, one per particle."""
        extra = {"num_frames": self.size["num_frames"]} if "num_frames" in inspect.signature(self.adapter.decode).parameters else {}
        videos: list[torch.Tensor] = []
        for group in chunked(latents, self.batch_size):
            videos += list(self.adapter.decode(torch.cat(group), frames, **extra))
        return videos


def regenerate(pipe: Any, prompt: str, lineage: Lineage | dict[str, Any], **pipe_kwargs: Any) -> torch.Tensor:
    """The video ``[T, 3, H, W]`` a search made, from its lineage alone (same pipeline, prompt and arguments)."""
    lineage = Lineage.from_dict(lineage) if isinstance(lineage, dict) else lineage
    if lineage.stopped_at is not None:
        raise ValueError(f"this candidate was stopped after step {lineage.stopped_at} (early pruning) and has no video")
    sampler = Sampler(pipe, prompt, pipe_kwargs)
    events: dict[int, Resampled] = {event.step: event for event in lineage.resampled}
    latents = sampler.initial(lineage)
    for index in range(sampler.steps):
        clean = sampler.predict_clean([latents], index)[0]
        event = events.get(index)
        fresh = sampler.draw(event.seed) if event is not None and event.seed is not None else None
        latents = sampler.step(latents, clean, index, fresh, event.strength if fresh is not None else 0.0)
    return sampler.decode([latents])[0]
