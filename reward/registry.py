"""Named reward presets (pyiqa-style): ``load(name)``, ``list_rewards()``, metadata per reward."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .base import CONFIG_NAME, VideoReward, place

#: Modules that register the built-in presets when imported.
BUILTIN_PRESET_MODULES: tuple[str, ...] = (
    "reward.simple",
    "reward.mixture",
    "reward.aigcvqa.align_presets",
    "reward.aigcvqa.presets",
    "reward.aigcvqa.aigcvqa_presets",
    "reward.pcqa.presets",
)


@dataclass(frozen=True)
class RewardSpec:
    """What ``load(name)`` needs: a builder plus metadata a user can list."""

    name: str
    builder: Callable[..., VideoReward]
    description: str
    components: tuple[str, ...]
    weight_sources: str
    higher_is_better: bool = True
    score_range: tuple[float, float] | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


_REWARDS: dict[str, RewardSpec] = {}


def register_reward(
    name: str,
    *,
    description: str,
    components: tuple[str, ...],
    weight_sources: str,
    higher_is_better: bool = True,
    score_range: tuple[float, float] | None = None,
    tags: tuple[str, ...] = (),
) -> Callable[[Callable[..., VideoReward]], Callable[..., VideoReward]]:
    """Decorator registering ``builder(weights=None, pretrained=True, **overrides) -> VideoReward``."""

    def decorate(builder: Callable[..., VideoReward]) -> Callable[..., VideoReward]:
        _REWARDS[name] = RewardSpec(
            name, builder, description, components, weight_sources, higher_is_better, score_range, tags
        )
        return builder

    return decorate


def import_builtin_architectures() -> None:
    """Import the modules that register built-in rewards and architectures (idempotent)."""
    for module in BUILTIN_PRESET_MODULES:
        importlib.import_module(module)


def list_rewards() -> list[str]:
    """Names accepted by ``reward.load``."""
    import_builtin_architectures()
    return sorted(_REWARDS)


def reward_spec(name: str) -> RewardSpec:
    """Metadata of a registered reward; a clear error lists the known names."""
    import_builtin_architectures()
    try:
        return _REWARDS[name]
    except KeyError:
        raise KeyError(f"unknown reward {name!r}; choose one of {sorted(_REWARDS)}") from None


def load(
    name: str,
    weights: Any = None,
    *,
    pretrained: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    **overrides: Any,
) -> VideoReward:
    """Build the reward ``name`` in eval mode.

    ``weights``: a native folder written by ``save_pretrained`` (any reward), or what the
    reward's own converter accepts (e.g. ``DOVER.pth``), as a path, hub id or URL.
    ``pretrained=False`` builds random weights; ``dtype`` sets the backbone autocast dtype.
    """
    spec = reward_spec(name)
    if weights is not None and not isinstance(weights, dict) and _is_native_folder(weights):
        if overrides:
            raise ValueError(f"overrides {sorted(overrides)} cannot change a saved model; edit its config.json instead")
        model = VideoReward.from_pretrained(weights)
    else:
        model = spec.builder(weights=weights, pretrained=pretrained, **overrides)
    return place(model, device=device, dtype=dtype)


def _is_native_folder(weights: Any) -> bool:
    path = Path(str(weights)).expanduser()
    return path.is_dir() and (path / CONFIG_NAME).is_file()
