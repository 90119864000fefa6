"""Reward backpropagation (DRaFT-K / VADER / AlignProp): maximise a differentiable reward of the
generated video by backpropagating through the VAE decode and the last K denoising steps.

The early steps run without a graph; only the last K keep one (fixed K, or K drawn per step from
``random_truncation`` as AlignProp does). LoRA on the denoiser is the only thing trained.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from reward.precision import maybe_checkpoint

from .sampling import denoise
from .trainer import FinetuneConfig, RewardFinetuner


@dataclass(kw_only=True)
class BackpropConfig(FinetuneConfig):
    batch_size: int = 1
    truncation_steps: int = 1
    random_truncation: tuple[int, int] | None = None
    eta: float = 0.0
    reward_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.truncation_steps <= self.num_inference_steps:
            raise ValueError(
                f"truncation_steps (K) must be in [1, num_inference_steps={self.num_inference_steps}], "
                f"got {self.truncation_steps}"
            )
        if self.random_truncation is not None:
            low, high = self.random_truncation
            if not 1 <= low <= high <= self.num_inference_steps:
                raise ValueError(f"random_truncation must satisfy 1 <= low <= high <= steps, got {self.random_truncation}")


class RewardBackpropTrainer(RewardFinetuner):
    """``RewardBackpropTrainer(pipe, BackpropConfig(...)).train()``; any adapter-supported pipeline."""

    config_class = BackpropConfig
    config: BackpropConfig

    def truncation(self) -> int:
        """K for this micro-batch: fixed, or uniform in ``random_truncation`` (inclusive)."""
        if self.config.random_truncation is None:
            return self.config.truncation_steps
        low, high = self.config.random_truncation
        return int(torch.randint(low, high + 1, (1,), generator=self.generator))

    def micro_step(self) -> dict[str, float]:
        """One batch: sample with a graph through the last K steps, decode, score, backpropagate."""
        c = self.config
        prompts = self.choose_prompts(c.batch_size)
        k = self.truncation()
        with self.accelerator.autocast():
            trajectory = denoise(
                self.adapter, self.encode(prompts), generator=self.generator, eta=c.eta,
                grad_from=c.num_inference_steps - k, gradient_checkpointing=self.loop_checkpointing,
                **self.generation_kwargs(),
            )
            indices = self.frames.resolve(c.num_frames, generator=self.generator)
            videos = maybe_checkpoint(self.adapter.decode, trajectory.final, indices, enabled=c.gradient_checkpointing)
            out = self.reward(videos, prompts)
        loss = -c.reward_scale * out.score.float().mean()
        self.accelerator.backward(loss / c.gradient_accumulation_steps)
        metrics = {"reward": float(out.score.detach().mean()), "reward_std": float(out.score.detach().std(unbiased=False)),
                   "loss": float(loss.detach()), "truncation": float(k)}
        metrics.update({f"reward/{name}": float(v.detach().mean()) for name, v in out.components.items()})
        return metrics

    def training_step(self) -> dict[str, float]:
        self.denoiser.train()
        totals: dict[str, float] = {}
        for _ in range(self.config.gradient_accumulation_steps):
            for name, value in self.micro_step().items():
                totals[name] = totals.get(name, 0.0) + value / self.config.gradient_accumulation_steps
        totals["grad_norm"] = self.optimizer_step()
        return totals
