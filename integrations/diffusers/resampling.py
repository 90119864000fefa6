"""Resampling a population of particles by their rewards (the selection step of particle filtering).

Weights are a softmax of the standardised rewards at a temperature (``0``: all weight on the best
particle, i.e. greedy selection; ``inf``: uniform, i.e. no selection); a particle whose reward
failed gets no weight. Systematic resampling then draws ``K`` ancestors with one uniform offset:
ancestor ``j`` covers position ``(offset + j) / K`` of the cumulative weights, so a particle of
weight ``w`` gets ``floor(K w)`` or ``ceil(K w)`` copies, and ancestors come out sorted.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def resampling_weights(rewards: Sequence[float | None], temperature: float, *, higher_is_better: bool = True) -> torch.Tensor:
    """Normalised float64 weights ``[K]``; ``None`` or non-finite rewards (failed) weigh 0 unless all failed."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0: greedy, inf: no selection), got {temperature}")
    valid = torch.tensor([r is not None and math.isfinite(r) for r in rewards])
    if not bool(valid.any()):
        return torch.full((len(rewards),), 1 / len(rewards), dtype=torch.float64)
    sign = 1.0 if higher_is_better else -1.0
    values = torch.tensor([sign * r if ok else 0.0 for r, ok in zip(rewards, valid.tolist())], dtype=torch.float64)
    if temperature == 0:
        best = torch.where(valid, values, torch.tensor(-math.inf, dtype=torch.float64)).argmax()
        return torch.nn.functional.one_hot(best, len(rewards)).double()
    spread = values[valid].std(unbiased=False) if int(valid.sum()) > 1 else torch.tensor(0.0, dtype=torch.float64)
    standard = (values - values[valid].mean()) / spread if spread > 0 else torch.zeros_like(values)
    logits = standard / temperature if math.isfinite(temperature) else torch.zeros_like(values)
    logits = torch.where(valid, logits, torch.tensor(-math.inf, dtype=torch.float64))
    return torch.softmax(logits, dim=0)


def systematic_resample(weights: torch.Tensor, offset: float) -> list[int]:
    """``K`` sorted ancestor indices for weights ``[K]`` and a uniform ``offset`` in [0, 1)."""
    if not 0 <= offset < 1:
        raise ValueError(f"the systematic offset must be in [0, 1), got {offset}")
    count = weights.shape[0]
    cumulative = torch.cumsum(weights.double() / weights.sum(), dim=0)
    positions = (offset + torch.arange(count, dtype=torch.float64)) / count
    return torch.searchsorted(cumulative, positions, right=True).clamp(max=count - 1).tolist()
