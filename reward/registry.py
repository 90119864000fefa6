"""Named reward presets (pyiqa-style): ``load(name)``, ``list_rewards()``, metadata per reward."""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .base import CONFIG_NAME, VideoReward, place
from .builtin_presets import BUILTIN_PRESETS
from .precision import parse_dtype

#: Modules that register the built-in presets and architectures when imported; which preset lives in
#: which module is in reward.builtin_presets.BUILTIN_PRESETS, so a module is imported when first needed.
BUILTIN_PRESET_MODULES: tuple[str, ...] = (
    "reward.simple",
    "reward.mixture",
    "reward.imagereward.presets",
    "reward.dover.presets",
    "reward.aigcvqa.presets",
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


def _builtin_metadata(name: str) -> dict[str, Any]:
    """The ``RewardSpec`` metadata reward.builtin_presets lists for a built-in preset (all but its module)."""
    preset = BUILTIN_PRESETS[name]
    return {f.name: getattr(preset, f.name) for f in fields(preset) if f.name != "module"}


def register_builtin_reward(name: str) -> Callable[[Callable[..., VideoReward]], Callable[..., VideoReward]]:
    """``register_reward`` for a built-in preset, with the metadata reward.builtin_presets lists for it."""
    return register_reward(name, **_builtin_metadata(name))


def import_builtin_architectures() -> None:
    """Import the modules that register built-in rewards and architectures (idempotent)."""
    for module in BUILTIN_PRESET_MODULES:
        importlib.import_module(module)


def list_rewards() -> list[str]:
    """Names accepted by ``reward.load`` (lists the built-in presets without importing them)."""
    return sorted({*_REWARDS, *BUILTIN_PRESETS})


def reward_spec(name: str) -> RewardSpec:
    """Metadata of a reward, without importing a built-in preset's module; a clear error lists the known names."""
    if name in _REWARDS:
        return _REWARDS[name]
    if name not in BUILTIN_PRESETS:
        raise _unknown(name)
    return RewardSpec(name, functools.partial(_build_builtin, name), **_builtin_metadata(name))


def _registered_spec(name: str) -> RewardSpec:
    """The registered spec of ``name``, importing the module of a built-in preset on first use."""
    if name not in _REWARDS and name in BUILTIN_PRESETS:
        importlib.import_module(BUILTIN_PRESETS[name].module)
    if name not in _REWARDS:
        raise _unknown(name)
    return _REWARDS[name]


def _unknown(name: str) -> KeyError:
    return KeyError(f"unknown reward {name!r}; choose one of {list_rewards()}")


def _build_builtin(name: str, weights: Any = None, pretrained: Any = True, **overrides: Any) -> VideoReward:
    return _registered_spec(name).builder(weights=weights, pretrained=pretrained, **overrides)


def load(
    name: str,
    weights: Any = None,
    *,
    pretrained: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    weights_dtype: torch.dtype | str | None = None,
    **overrides: Any,
) -> VideoReward:
    """Build the reward ``name`` in eval mode.

    ``weights``: a native folder written by ``save_pretrained`` (any reward), or what the
    reward's own converter accepts (e.g. ``DOVER.pth``), as a path, hub id or URL.
    ``pretrained=False`` builds random weights; ``dtype`` sets the backbone autocast dtype;
    ``weights_dtype`` (bf16/fp16) stores the frozen backbones' weights in that dtype (they then compute in it).
    """
    spec = _registered_spec(name)
    weights_dtype = parse_dtype(weights_dtype)
    if weights_dtype is not None and parse_dtype(dtype) in (torch.float32, torch.float64):
        raise ValueError(
            f"weights_dtype={weights_dtype} stores the backbones in that dtype, so they compute in it: leave dtype unset "
            f"or pass dtype={weights_dtype}."
        )
    if weights is not None and not isinstance(weights, dict) and _is_native_folder(weights):
        if overrides:
            raise ValueError(f"overrides {sorted(overrides)} cannot change a saved model; edit its config.json instead")
        model = VideoReward.from_pretrained(weights)
    else:
        model = spec.builder(weights=weights, pretrained=pretrained, **overrides)
    model = place(model, device=device, dtype=dtype)
    return model if weights_dtype is None else model.store_backbone_weights(weights_dtype)


def _is_native_folder(weights: Any) -> bool:
    path = Path(str(weights)).expanduser()
    return path.is_dir() and (path / CONFIG_NAME).is_file()
