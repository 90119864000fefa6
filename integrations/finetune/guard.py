"""Reward-hacking guard: watch held-out videos with the training reward and a second reward.

A policy that games its reward raises that reward while an independent judge of the same videos
gets worse. Every evaluation measures both rewards' change since the first evaluation in units of
the first evaluation's spread across videos; when the training reward rises by more than
``tolerance`` units while the watch reward falls by more than ``tolerance`` units, the guard warns.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from reward.base import VideoReward

logger = logging.getLogger(__name__)


class RewardHackingWarning(UserWarning):
    """The training reward improves on held-out prompts while the second reward gets worse."""


@dataclass
class GuardReport:
    step: int
    train_mean: float
    watch_mean: float
    train_gain: float
    watch_gain: float
    diverged: bool


@dataclass
class _Baseline:
    train_mean: float
    train_std: float
    watch_mean: float
    watch_std: float


def _mean_std(values: torch.Tensor) -> tuple[float, float]:
    values = values.double()
    return float(values.mean()), float(values.std(unbiased=False)) if values.numel() > 1 else 0.0


class RewardHackingGuard:
    """Evaluate held-out videos every ``every_n_steps`` with both rewards and warn on divergence."""

    def __init__(
        self,
        train_reward: VideoReward,
        watch_reward: VideoReward,
        *,
        every_n_steps: int,
        tolerance: float = 0.5,
        min_scale: float = 1e-6,
    ):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.train_reward, self.watch_reward = train_reward, watch_reward
        self.every_n_steps, self.tolerance, self.min_scale = every_n_steps, tolerance, min_scale
        self.baseline: _Baseline | None = None
        self.history: list[GuardReport] = []

    def due(self, step: int) -> bool:
        """True at step 0 (the baseline) and every ``every_n_steps`` steps after it."""
        return step % self.every_n_steps == 0

    def evaluate(self, step: int, videos: torch.Tensor, prompts: Sequence[str]) -> GuardReport:
        """Score the held-out ``videos`` with both rewards, record and return the report."""
        train_mean, train_std = _mean_std(self.train_reward.score(videos, list(prompts)).score)
        watch_mean, watch_std = _mean_std(self.watch_reward.score(videos, list(prompts)).score)
        if self.baseline is None:
            self.baseline = _Baseline(train_mean, train_std, watch_mean, watch_std)
        base = self.baseline
        train_gain = (train_mean - base.train_mean) / max(base.train_std, self.min_scale)
        watch_gain = (watch_mean - base.watch_mean) / max(base.watch_std, self.min_scale)
        diverged = train_gain > self.tolerance and watch_gain < -self.tolerance
        report = GuardReport(step, train_mean, watch_mean, train_gain, watch_gain, diverged)
        self.history.append(report)
        if diverged:
            message = (
                f"possible reward hacking at step {step}: the training reward rose by {train_gain:.2f} baseline "
                f"std on held-out prompts while the watch reward fell by {-watch_gain:.2f}; inspect the samples, "
                "lower the learning rate or K, add a KL penalty, or stop at an earlier checkpoint"
            )
            logger.warning(message)
            warnings.warn(message, RewardHackingWarning, stacklevel=2)
        return report

    def state_dict(self) -> dict[str, Any]:
        return {
            "baseline": None if self.baseline is None else asdict(self.baseline),
            "history": [asdict(report) for report in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.baseline = None if state["baseline"] is None else _Baseline(**state["baseline"])
        self.history = [GuardReport(**report) for report in state["history"]]
