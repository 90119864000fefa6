"""Closed-form image statistics as rewards: quick sanity targets and deliberately hackable baselines.

They need no weights and are differentiable, which makes them the reference targets in the
fine-tuning tests (a trainer must raise them) and the "hackable" reward in the reward-hacking
guard test. They are not quality models.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import VideoReward, register_architecture
from .output import RewardOutput
from .registry import register_builtin_reward
from .transfer import device_constant

#: Rec. 601 luma weights of R, G and B.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass
class SimpleConfig:
    statistic: str = "colorfulness"


def colorfulness(videos: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk (2003) colorfulness per frame on the 0-255 scale, averaged over time."""
    r, g, b = (videos * 255).unbind(dim=2)
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = torch.sqrt(rg.var(dim=(-2, -1), unbiased=False) + yb.var(dim=(-2, -1), unbiased=False) + 1e-6)
    level = torch.sqrt(rg.mean(dim=(-2, -1)) ** 2 + yb.mean(dim=(-2, -1)) ** 2 + 1e-6)
    return (spread + 0.3 * level).mean(dim=1)


def brightness(videos: torch.Tensor) -> torch.Tensor:
    """Mean Rec. 601 luma in [0, 1] per video."""
    weights = device_constant(LUMA_WEIGHTS, videos.device, videos.dtype).view(1, 1, 3, 1, 1)
    return (videos * weights).sum(dim=2).mean(dim=(1, 2, 3))


STATISTICS = {"colorfulness": colorfulness, "brightness": brightness}


@register_architecture
class StatisticReward(VideoReward):
    """A prompt-free reward computed by a closed-form statistic of the pixels."""

    architecture = "statistic"
    config_class = SimpleConfig
    requires_prompts = False

    def __init__(self, config: SimpleConfig):
        super().__init__(config)
        if config.statistic not in STATISTICS:
            raise ValueError(f"unknown statistic {config.statistic!r}; choose one of {sorted(STATISTICS)}")
        self.component_names = (config.statistic,)

    def _forward(self, videos: torch.Tensor, prompts: list[str] | None) -> RewardOutput:
        value = STATISTICS[self.config.statistic](videos)
        return RewardOutput(score=value, components={self.config.statistic: value})


def _builder(statistic: str):
    def build(weights=None, pretrained: bool = True, **overrides) -> StatisticReward:
        if weights is not None:
            raise ValueError(f"the {statistic!r} reward has no weights; call reward.load({statistic!r})")
        return StatisticReward(SimpleConfig(statistic=statistic, **overrides))

    return build


for _statistic in ("colorfulness", "brightness"):
    register_builtin_reward(_statistic)(_builder(_statistic))
