"""Video DDPO: policy-gradient fine-tuning of a text-to-video model towards any (even non-differentiable) reward.

Each epoch samples videos with a stochastic sampler that records every step's log-prob (DDIM with
eta > 0 for UNet families, the Flow-GRPO SDE step for flow-matching families), scores them on a
worker thread while the next batch is sampled, turns rewards into per-prompt normalised, clipped
advantages, and runs PPO's clipped objective on log-probs recomputed by the current LoRA, with an
optional KL penalty to the base model (LoRA switched off).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import gather_object

from reward.precision import maybe_checkpoint

from .async_reward import AsyncRewardScorer
from .lora import lora_disabled
from .log_prob import StochasticStep
from .ppo import clip_advantages, gaussian_kl, ppo_clipped_loss
from .sampling import ddpo_scheduler, denoise, policy_for
from .stat_tracker import PerPromptStatTracker
from .trainer import FinetuneConfig, RewardFinetuner

logger = logging.getLogger(__name__)

ADVANTAGE_MODES = ("per-prompt", "group", "batch")
#: Added to standard deviations so a group of equal rewards gives zero advantages.
STD_EPS = 1e-6


@dataclass(kw_only=True)
class DDPOConfig(FinetuneConfig):
    """One trainer ``step`` is one epoch: sample, score, then PPO updates on those samples."""

    sample_batch_size: int = 4
    sample_batches_per_epoch: int = 2
    samples_per_prompt: int = 1
    train_batch_size: int = 2
    inner_epochs: int = 1
    timestep_fraction: float = 1.0
    clip_range: float = 1e-4
    adv_clip_max: float = 5.0
    eta: float = 1.0
    noise_level: float = 0.7
    # "per-prompt": trl's PerPromptStatTracker(stat_buffer_size, stat_min_count) across epochs;
    # "group": within each group of samples_per_prompt samples (GRPO); "batch": over the whole epoch
    advantage_normalisation: str = "per-prompt"
    stat_buffer_size: int = 32
    stat_min_count: int = 16
    # a group's samples start from one noise and differ only by the sampler's steps (DanceGRPO)
    shared_initial_noise: bool = False
    kl_coef: float = 0.0
    async_reward: bool = True

    def __post_init__(self) -> None:
        if self.sample_batch_size % self.samples_per_prompt:
            raise ValueError(
                f"sample_batch_size ({self.sample_batch_size}) must be a multiple of samples_per_prompt "
                f"({self.samples_per_prompt})"
            )
        samples = self.sample_batch_size * self.sample_batches_per_epoch
        per_update = self.train_batch_size * self.gradient_accumulation_steps
        if samples % per_update:
            raise ValueError(
                f"samples per epoch ({samples} = sample_batch_size x sample_batches_per_epoch) must be divisible by "
                f"train_batch_size x gradient_accumulation_steps ({per_update})"
            )
        if self.advantage_normalisation not in ADVANTAGE_MODES:
            raise ValueError(
                f"advantage_normalisation must be one of {ADVANTAGE_MODES}, got {self.advantage_normalisation!r}"
            )
        if not 0 < self.timestep_fraction <= 1:
            raise ValueError(f"timestep_fraction must be in (0, 1], got {self.timestep_fraction}")


@dataclass
class Samples:
    """One epoch of sampled trajectories with their rewards and advantages."""

    prompts: list[str]
    groups: torch.Tensor  # [N] id of the sampled group (samples_per_prompt samples of one prompt)
    latents: torch.Tensor  # [N, steps + 1, C, F, h, w]
    log_probs: torch.Tensor  # [N, steps]
    rewards: torch.Tensor  # [N]
    components: dict[str, torch.Tensor]
    advantages: torch.Tensor | None = None

    @property
    def num_steps(self) -> int:
        return self.log_probs.shape[1]


class VideoDDPOTrainer(RewardFinetuner):
    """``VideoDDPOTrainer(pipe, DDPOConfig(...)).train()``; the reward needs no gradients."""

    config_class = DDPOConfig
    config: DDPOConfig

    def setup(self) -> None:
        c = self.config
        scheduler, changes = ddpo_scheduler(self.pipe.scheduler)
        if changes:
            self.pipe.scheduler = scheduler
            logger.warning(
                "VideoDDPOTrainer changed the pipeline's scheduler so that every sampling step has a log-prob "
                "(a DDIM step onto alpha = 1 or from t = 0 is deterministic): %s", "; ".join(changes),
            )
        self.policy = self.sampling_policy = policy_for(self.adapter, eta=c.eta, noise_level=c.noise_level)
        self.stat_tracker = PerPromptStatTracker(c.stat_buffer_size, c.stat_min_count)

    # -- sampling ---------------------------------------------------------------------------------
    def _score(self, videos: torch.Tensor, prompts: list[str]):
        return self.reward(videos, prompts)

    @torch.no_grad()
    def sample(self) -> Samples:
        """Sample an epoch; each batch's reward runs on a worker thread while the next batch is sampled."""
        c = self.config
        self.denoiser.eval()
        batches, futures = [], []
        groups_per_batch = c.sample_batch_size // c.samples_per_prompt
        with AsyncRewardScorer(self._score, max_workers=1 if c.async_reward else 0) as scorer:
            for _ in range(c.sample_batches_per_epoch):
                chosen = self.choose_prompts(groups_per_batch)
                prompts = [p for p in chosen for _ in range(c.samples_per_prompt)]
                with self.accelerator.autocast():
                    trajectory = denoise(
                        self.adapter, self.encode(prompts), policy=self.policy, generator=self.generator,
                        record=True, initial_latents=self.initial_noise(groups_per_batch), **self.generation_kwargs(),
                    )
                    frames = self.frames.resolve(c.num_frames, generator=self.generator)
                    videos = self.adapter.decode(trajectory.final, frames)
                futures.append(scorer.submit(videos, prompts))
                batches.append((prompts, trajectory))
            outputs = [future.result() for future in futures]
        return Samples(
            prompts=[p for prompts, _ in batches for p in prompts],
            groups=torch.arange(groups_per_batch * len(batches)).repeat_interleave(c.samples_per_prompt),
            latents=torch.cat([t.latents for _, t in batches]),
            log_probs=torch.cat([t.log_probs for _, t in batches]),
            rewards=torch.cat([o.score.float() for o in outputs]).to(self.accelerator.device),
            components={k: torch.cat([o.components[k] for o in outputs]) for k in outputs[0].components},
        )

    def initial_noise(self, groups: int) -> torch.Tensor | None:
        """With ``shared_initial_noise``, one starting noise per group, repeated for its samples."""
        c = self.config
        if not c.shared_initial_noise:
            return None
        noise = self.adapter.prepare_latents(
            groups, num_frames=c.num_frames, height=c.height, width=c.width, generator=self.generator
        )
        return noise.repeat_interleave(c.samples_per_prompt, dim=0)

    def compute_advantages(self, samples: Samples) -> torch.Tensor:
        """Normalised advantages over all processes' samples (per prompt, per group or per batch)."""
        rewards = self.accelerator.gather(samples.rewards).cpu()
        mode = self.config.advantage_normalisation
        if mode == "per-prompt":
            prompts = gather_object(samples.prompts) if self.accelerator.num_processes > 1 else samples.prompts
            advantages = self.stat_tracker.update(prompts, rewards)
        elif mode == "group":
            offset = self.accelerator.process_index * (int(samples.groups.max()) + 1)
            groups = self.accelerator.gather((samples.groups + offset).to(self.accelerator.device)).cpu()
            advantages = torch.empty_like(rewards)
            for group in groups.unique():
                members = groups == group
                values = rewards[members]
                advantages[members] = (values - values.mean()) / (values.std(unbiased=False) + STD_EPS)
        else:
            advantages = (rewards - rewards.mean()) / (rewards.std(unbiased=False) + STD_EPS)
        local = advantages.reshape(self.accelerator.num_processes, -1)[self.accelerator.process_index]
        return local.to(self.accelerator.device)

    # -- training ----------------------------------------------------------------------------------
    def step_log_prob(self, samples: Samples, indices: torch.Tensor, step_index: int, prompt_embeds=None) -> StochasticStep:
        """Re-score the recorded step ``step_index`` of samples ``indices`` under the current policy."""
        if prompt_embeds is None:
            prompt_embeds = self.encode([samples.prompts[i] for i in indices.tolist()])
        latents = samples.latents[indices, step_index]
        timestep = self.adapter.scheduler.timesteps[step_index]
        output = maybe_checkpoint(
            self.adapter.denoiser_forward, latents, timestep, prompt_embeds, self.config.guidance_scale,
            enabled=self.loop_checkpointing,
        )
        return self.policy.step(self.adapter, output, step_index, latents, prev_sample=samples.latents[indices, step_index + 1])

    def prepare_schedule(self) -> None:
        """Put the scheduler (and the policy's sigmas) back on the sampling schedule before re-scoring."""
        c = self.config
        self.adapter.set_timesteps(c.num_inference_steps, num_frames=c.num_frames, height=c.height, width=c.width)
        self.policy.prepare(self.adapter)

    def ppo_loss(self, samples: Samples, indices: torch.Tensor, step_index: int, prompt_embeds) -> tuple[torch.Tensor, dict[str, float]]:
        with self.accelerator.autocast():
            step = self.step_log_prob(samples, indices, step_index, prompt_embeds)
        advantages = clip_advantages(samples.advantages[indices], self.config.adv_clip_max)
        ppo = ppo_clipped_loss(step.log_prob, samples.log_probs[indices, step_index], advantages, self.config.clip_range)
        loss = ppo.loss
        stats = {"approx_kl": float(ppo.approx_kl), "clip_fraction": float(ppo.clip_fraction), "ratio": float(ppo.ratio.detach().mean())}
        if self.config.kl_coef > 0:
            with torch.no_grad(), lora_disabled(self.denoiser), self.accelerator.autocast():
                reference = self.step_log_prob(samples, indices, step_index, prompt_embeds)
            kl = gaussian_kl(step.mean, reference.mean, step.std).mean()
            loss = loss + self.config.kl_coef * kl
            stats["kl"] = float(kl.detach())
        stats["loss"] = float(loss.detach())
        return loss, stats

    def train_on(self, samples: Samples) -> dict[str, float]:
        """PPO over the epoch's samples: minibatches x (a random subset of) denoising steps."""
        c = self.config
        self.prepare_schedule()
        self.denoiser.train()
        train_steps = max(1, int(samples.num_steps * c.timestep_fraction))
        sums: dict[str, float] = {}
        count, grad_norms = 0, []
        for _ in range(c.inner_epochs):
            order = torch.randperm(len(samples.prompts), generator=self.generator)
            for number, indices in enumerate(order.split(c.train_batch_size), start=1):
                embeds = self.encode([samples.prompts[i] for i in indices.tolist()])
                for step_index in torch.randperm(samples.num_steps, generator=self.generator)[:train_steps].tolist():
                    loss, stats = self.ppo_loss(samples, indices, step_index, embeds)
                    self.accelerator.backward(loss / (c.gradient_accumulation_steps * train_steps))
                    for key, value in stats.items():
                        sums[key] = sums.get(key, 0.0) + value
                    count += 1
                if number % c.gradient_accumulation_steps == 0:
                    grad_norms.append(self.optimizer_step())
        metrics = {key: value / count for key, value in sums.items()}
        metrics["grad_norm"] = sum(grad_norms) / len(grad_norms)
        return metrics

    def training_step(self) -> dict[str, float]:
        samples = self.sample()
        samples.advantages = self.compute_advantages(samples)
        metrics = {
            "reward": float(samples.rewards.mean()), "reward_std": float(samples.rewards.std(unbiased=False)),
            "advantage_abs_mean": float(samples.advantages.abs().mean()),
            "advantage_abs_max": float(samples.advantages.abs().max()),
        }
        metrics.update({f"reward/{k}": float(v.float().mean()) for k, v in samples.components.items()})
        metrics.update(self.train_on(samples))
        return metrics

    # -- resume --------------------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {"stat_tracker": self.stat_tracker.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.stat_tracker.load_state_dict(state["stat_tracker"])
