"""Our own denoising loop on a family adapter: stochastic steps with log-probs (DDPO) or truncated
gradients (reward backprop). A pipeline's ``__call__`` runs under ``no_grad`` and records nothing.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import CogVideoXDDIMScheduler, DDIMScheduler

from integrations.diffusers.adapters import PromptEmbeddings, VideoPipelineAdapter, flow_noise_levels
from reward.precision import maybe_checkpoint

from .log_prob import StochasticStep, ddim_step_with_log_prob, flow_sde_step_with_log_prob


def is_flow_matching(scheduler: Any) -> bool:
    """Flow-matching schedulers (Wan, LTX, Hunyuan, Mochi) step on sigmas with a velocity prediction."""
    config = scheduler.config
    return (
        type(scheduler).__name__.startswith("FlowMatch")
        or bool(config.get("use_flow_sigmas", False))
        or config.get("prediction_type") == "flow_prediction"
    )


class StochasticPolicy(abc.ABC):
    """A sampler whose every step is Gaussian with a known log-prob (the policy DDPO optimises)."""

    def prepare(self, adapter: VideoPipelineAdapter) -> None:
        """Called right after ``adapter.set_timesteps`` for each trajectory."""

    @abc.abstractmethod
    def step(
        self,
        adapter: VideoPipelineAdapter,
        model_output: torch.Tensor,
        index: int,
        latents: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        prev_sample: torch.Tensor | None = None,
    ) -> StochasticStep:
        """Step ``latents`` from timestep ``index`` to the next; samples, or scores a given ``prev_sample``."""


@dataclass
class DDIMPolicy(StochasticPolicy):
    """DDIM with ``eta`` > 0 for UNet / DDIM families (ModelScope, AnimateDiff, CogVideoX)."""

    eta: float = 1.0

    def step(self, adapter, model_output, index, latents, *, generator=None, prev_sample=None) -> StochasticStep:
        timestep = adapter.scheduler.timesteps[index]
        return ddim_step_with_log_prob(
            adapter.scheduler, model_output, timestep, latents, eta=self.eta, generator=generator, prev_sample=prev_sample
        )


@dataclass
class FlowSDEPolicy(StochasticPolicy):
    """Flow-GRPO's SDE step for flow-matching families (Wan, LTX, HunyuanVideo, Mochi); ``sigmas`` are the
    schedule's noise levels and ``velocity_sign`` turns the model output into ``noise - x0``."""

    noise_level: float = 0.7
    sigmas: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    velocity_sign: float = 1.0

    def prepare(self, adapter: VideoPipelineAdapter) -> None:
        levels, self.velocity_sign = flow_noise_levels(adapter.scheduler)
        self.sigmas = levels.detach().float().cpu()

    def step(self, adapter, model_output, index, latents, *, generator=None, prev_sample=None) -> StochasticStep:
        below_one = self.sigmas[self.sigmas < 1]
        return flow_sde_step_with_log_prob(
            self.velocity_sign * model_output, self.sigmas[index], self.sigmas[index + 1], latents,
            noise_level=self.noise_level,
            sigma_cap=float(below_one.max()) if len(below_one) else None, generator=generator, prev_sample=prev_sample,
        )


def ddpo_scheduler(scheduler: Any) -> tuple[Any, list[str]]:
    """A scheduler on which every DDPO sampling step has a log-prob, and the changes that took (none when
    ``scheduler`` already fits).

    Flow-matching schedulers always fit (the SDE step only reads their sigmas). Others become DDIM built
    from their config: ``CogVideoXDDIMScheduler`` for the CogVideoX schedulers (it keeps their SNR-shifted
    noise schedule), ``DDIMScheduler`` otherwise. A DDIM step is deterministic, so has no log-prob, when it
    lands on ``alpha = 1`` (``set_alpha_to_one``) or steps from ``t = 0`` (``linspace`` spacing, or
    ``leading`` without ``steps_offset``); dynamic thresholding has no Gaussian log-prob either.
    """
    if is_flow_matching(scheduler):
        return scheduler, []
    target = CogVideoXDDIMScheduler if "snr_shift_scale" in scheduler.config else DDIMScheduler
    config = dict(scheduler.config)
    current = target.from_config(config).config  # the target's defaults where the source has no such key
    overrides: dict[str, Any] = {}
    if current.get("thresholding", False):
        overrides["thresholding"] = False
    if current.set_alpha_to_one:
        overrides["set_alpha_to_one"] = False
    if current.timestep_spacing == "linspace":
        overrides["timestep_spacing"] = "trailing"
    elif current.timestep_spacing == "leading" and current.steps_offset < 1:
        overrides["steps_offset"] = 1
    if type(scheduler) is target and not overrides:
        return scheduler, []
    changes = [] if type(scheduler) is target else [f"{type(scheduler).__name__} -> {target.__name__}"]
    changes += [f"{key}: {current.get(key)!r} -> {value!r}" for key, value in overrides.items()]
    return target.from_config(config, **overrides), changes


def policy_for(adapter: VideoPipelineAdapter, *, eta: float = 1.0, noise_level: float = 0.7) -> StochasticPolicy:
    """The stochastic policy matching the pipeline's scheduler: the flow SDE step, or DDIM with ``eta``
    (give the pipeline ``ddpo_scheduler(pipe.scheduler)`` first so every DDIM step has a log-prob)."""
    if is_flow_matching(adapter.scheduler):
        return FlowSDEPolicy(noise_level=noise_level)
    return DDIMPolicy(eta=eta)


@dataclass
class Trajectory:
    """A sampled batch: latents before/after every step, per-step log-probs and the timesteps."""

    latents: torch.Tensor  # [B, steps + 1, C, F, h, w]
    log_probs: torch.Tensor  # [B, steps] (empty second dim for deterministic steps)
    timesteps: torch.Tensor  # [steps]

    @property
    def final(self) -> torch.Tensor:
        return self.latents[:, -1]


def denoise(
    adapter: VideoPipelineAdapter,
    prompt_embeds: PromptEmbeddings,
    *,
    num_inference_steps: int,
    num_frames: int,
    height: int,
    width: int,
    guidance_scale: float,
    generator: torch.Generator | None,
    policy: StochasticPolicy | None = None,
    eta: float = 0.0,
    grad_from: int | None = None,
    gradient_checkpointing: bool = False,
    record: bool = False,
    initial_latents: torch.Tensor | None = None,
) -> Trajectory:
    """Run the full denoising loop from fresh noise.

    ``policy`` set: stochastic steps with log-probs (DDPO). Otherwise the adapter's own scheduler
    step (``eta`` for DDIM). ``grad_from`` = i keeps the autograd graph from step i on (DRaFT-K:
    steps - K); ``None`` runs without gradients. ``record`` keeps every intermediate latent.
    ``initial_latents`` replaces the fresh noise (e.g. one noise shared by a group of samples).
    """
    timesteps = adapter.set_timesteps(num_inference_steps, num_frames=num_frames, height=height, width=width)
    if policy is not None:
        policy.prepare(adapter)
    latents = initial_latents
    if latents is None:
        latents = adapter.prepare_latents(
            prompt_embeds.batch_size, num_frames=num_frames, height=height, width=width, generator=generator
        )
    history, log_probs = [latents], []
    for index, timestep in enumerate(timesteps):
        with torch.set_grad_enabled(grad_from is not None and index >= grad_from):
            output = maybe_checkpoint(
                adapter.denoiser_forward, latents, timestep, prompt_embeds, guidance_scale,
                enabled=gradient_checkpointing,
            )
            if policy is None:
                latents = adapter.scheduler_step(output, timestep, latents, generator=generator, eta=eta)
            else:
                step = policy.step(adapter, output, index, latents, generator=generator)
                latents = step.prev_sample
                log_probs.append(step.log_prob)
        if record:
            history.append(latents)
    stacked = torch.stack(history, dim=1) if record else latents[:, None]
    recorded = torch.stack(log_probs, dim=1) if log_probs else latents.new_zeros(latents.shape[0], 0)
    return Trajectory(stacked, recorded, timesteps.detach().cpu())
