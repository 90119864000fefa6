"""Weighted mixtures of named rewards: ``"aigc-vqa:1.0,pcqa:0.5"`` -> one reward scoring their sum.

A mixture is itself a ``VideoReward``: the score is ``sum(weight * member score)`` and the
components keep every member's score (``"<name>"``) and its own components (``"<name>/<component>"``),
so a trainer can log each part. Members keep their own scales: pick weights accordingly.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .base import VideoReward, register_architecture
from .output import RewardOutput
from .precision import parse_dtype


def parse_mixture(spec: str) -> list[tuple[str, float]]:
    """``"aigc-vqa:1.0,pcqa:0.5"`` -> ``[("aigc-vqa", 1.0), ("pcqa", 0.5)]``; a bare name weighs 1."""
    members: list[tuple[str, float]] = []
    for part in spec.split(","):
        name, _, weight = part.strip().partition(":")
        name = name.strip()
        if not name:
            raise ValueError(f"reward mixture {spec!r} has an empty name; write it as 'name:weight,name:weight'")
        try:
            value = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"reward mixture {spec!r}: weight {weight!r} of {name!r} is not a number") from None
        if name in dict(members):
            raise ValueError(f"reward mixture {spec!r} names {name!r} twice; give each reward once")
        members.append((name, value))
    return members


@dataclass
class MixtureConfig:
    members: list[tuple[str, float]] = field(default_factory=list)


@register_architecture
class RewardMixture(VideoReward):
    """Score = weighted sum of member rewards; prompts are checked (and required) only when a member reads them."""

    architecture = "reward-mixture"
    config_class = MixtureConfig

    def __init__(self, config: MixtureConfig, rewards: Mapping[str, VideoReward] | None = None):
        super().__init__(config)
        from .registry import load

        config.members = [(str(name), float(weight)) for name, weight in config.members]
        if not config.members:
            raise ValueError("a reward mixture needs at least one member, e.g. 'aigc-vqa:1.0,pcqa:0.5'")
        rewards = dict(rewards or {})
        self.rewards = nn.ModuleDict(
            {name: rewards.pop(name) if name in rewards else load(name, pretrained=False) for name, _ in config.members}
        )
        if rewards:
            raise ValueError(f"rewards {sorted(rewards)} are not members of the mixture {config.members}")
        self.weights = dict(config.members)
        self.requires_prompts = any(member.requires_prompts for member in self.rewards.values())
        self.component_names = tuple(
            key for name, member in self.rewards.items() for key in (name, *(f"{name}/{c}" for c in member.component_names))
        )

    def set_compute_dtype(self, dtype: torch.dtype | str | None) -> "RewardMixture":
        self.compute_dtype = parse_dtype(dtype)
        for member in self.rewards.values():
            member.set_compute_dtype(dtype)
        return self

    def compile_targets(self) -> dict[str, tuple[nn.Module, str]]:
        """The backbones of every member, named ``<member>/<backbone>``."""
        return {
            f"{name}/{label}": target
            for name, member in self.rewards.items()
            for label, target in member.compile_targets().items()
        }

    def _forward(self, videos: torch.Tensor, prompts: list[str] | None, **kwargs: Any) -> RewardOutput:
        total = videos.new_zeros(videos.shape[0])
        components: dict[str, torch.Tensor] = {}
        for name, member in self.rewards.items():
            out = member(videos, prompts, **kwargs)
            total = total + self.weights[name] * out.score.float()
            components[name] = out.score
            components.update({f"{name}/{key}": value for key, value in out.components.items()})
        return RewardOutput(score=total, components=components)


def load_mixture(
    spec: str,
    *,
    weights: Mapping[str, Any] | None = None,
    pretrained: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
) -> RewardMixture:
    """Build a mixture from ``spec``; ``weights`` maps a member name to what ``reward.load`` accepts."""
    from .base import place
    from .registry import load

    members = parse_mixture(spec)
    weights = dict(weights or {})
    unknown = set(weights) - {name for name, _ in members}
    if unknown:
        raise ValueError(f"weights given for {sorted(unknown)}, which are not in the mixture {spec!r}")
    rewards = {name: load(name, weights.get(name), pretrained=pretrained) for name, _ in members}
    return place(RewardMixture(MixtureConfig(members), rewards), device=device, dtype=dtype)


def resolve_reward(
    reward: VideoReward | str,
    *,
    pretrained: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
) -> VideoReward:
    """Accept a built reward, a registered name (``"pcqa"``) or a mixture spec (``"aigc-vqa:1,pcqa:0.5"``)."""
    if isinstance(reward, VideoReward):
        return reward
    if not isinstance(reward, str):
        raise TypeError(f"reward must be a VideoReward or a name/mixture string, got {type(reward).__name__}")
    members = parse_mixture(reward)
    if len(members) == 1 and members[0][1] == 1.0:
        from .registry import load

        return load(members[0][0], pretrained=pretrained, device=device, dtype=dtype)
    return load_mixture(reward, pretrained=pretrained, device=device, dtype=dtype)
