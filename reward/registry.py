"""Named reward presets (pyiqa-style): ``load(name)``, ``list_rewards()``, metadata per reward."""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .base import VideoReward, place, read_native_config
from .builtin_presets import BUILTIN_PRESETS
from .errors import CheckpointError
from .precision import parse_dtype
from .weights import native_folder

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
    #: the ``architecture`` its models save; ``load(name, weights=folder)`` refuses a folder of another (None: any)
    architecture: str | None = None


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
    architecture: str | None = None,
) -> Callable[[Callable[..., VideoReward]], Callable[..., VideoReward]]:
    """Decorator registering ``builder(weights=None, pretrained=True, **overrides) -> VideoReward``.

    ``architecture`` (the ``VideoReward.architecture`` the builder returns) makes ``load(name, weights=folder)``
    refuse a native folder holding another architecture."""

    def decorate(builder: Callable[..., VideoReward]) -> Callable[..., VideoReward]:
        _REWARDS[name] = RewardSpec(
            name, builder, description, components, weight_sources, higher_is_better, score_range, tags, architecture
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
    compile: bool | Mapping[str, Any] = False,
    **overrides: Any,
) -> VideoReward:
    """Build the reward ``name`` in eval mode.

    ``weights``: a native folder written by ``save_pretrained`` or ``push_to_hub`` (a local path or a hub
    id ``owner/repo``) holding this reward's architecture, or what the reward's own converter accepts
    (e.g. ``DOVER.pth``), as a path, hub id or URL. ``pretrained=False`` builds random weights;
    ``dtype`` sets the backbone autocast dtype; ``weights_dtype`` (bf16/fp16) stores the frozen backbones'
    weights in that dtype (they then compute in it); ``compile=True`` (or a dict of
    ``VideoReward.compile`` options) compiles the backbones.
    """
    spec = _registered_spec(name)
    weights_dtype = parse_dtype(weights_dtype)
    if weights_dtype is not None and parse_dtype(dtype) in (torch.float32, torch.float64):
        raise ValueError(
            f"weights_dtype={weights_dtype} stores the backbones in that dtype, so they compute in it: leave dtype unset "
            f"or pass dtype={weights_dtype}."
        )
    folder = native_folder(weights) if weights is not None and not isinstance(weights, dict) else None
    if folder is not None:
        if overrides:
            raise ValueError(f"overrides {sorted(overrides)} cannot change a saved model; edit its config.json instead")
        _check_architecture(spec, folder)
        model = VideoReward.from_pretrained(folder)
    else:
        model = spec.builder(weights=weights, pretrained=pretrained, **overrides)
    model = place(model, device=device, dtype=dtype)
    if weights_dtype is not None:
        model = model.store_backbone_weights(weights_dtype)
    if compile:
        model.compile(**(dict(compile) if isinstance(compile, Mapping) else {}))
    return model


def _check_architecture(spec: RewardSpec, folder: Path) -> None:
    """Asking ``load`` for one reward must not return another: the folder's architecture must be the preset's."""
    saved = read_native_config(folder).get("architecture")
    if spec.architecture is None or saved == spec.architecture:
        return
    presets = [name for name in list_rewards() if reward_spec(name).architecture == saved]
    raise CheckpointError(
        f"{folder} holds a {saved!r} model, but reward.load({spec.name!r}) builds {spec.architecture!r} models. "
        + (f"Load it as one of {presets}, or with " if presets else "Load it with ")
        + "reward.VideoReward.from_pretrained(folder), which loads any native folder."
    )
