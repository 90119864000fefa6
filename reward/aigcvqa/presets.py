"""Registered AIGC-VQA presets: ``aigc-vqa`` (paper sizes, zero-shot start) and ``aigc-vqa-tiny`` (random, small)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import WeightsNotFoundError
from ..registry import register_builtin_reward
from .model import AigcVqaReward, aigc_vqa_config
from .zero_shot import DEFAULT_SOURCES, WHERE_AIGC_VQA_WEIGHTS_COME_FROM, build_zero_shot

#: Keys a ``weights=`` dict may hold.
SOURCE_KEYS = ("dover", "imagereward", "med_config")


def _build(
    name: str, sizes: str, weights: Any, pretrained: bool, defaults: Mapping[str, Any] | None, overrides: dict[str, Any]
) -> AigcVqaReward:
    """Native checkpoint (folder, URL or hub id), zero-shot from the public checkpoints, or random weights."""
    if weights is not None and not pretrained:
        raise ValueError(f"{name}: weights={weights!r} contradicts pretrained=False; pass one of them.")
    if weights is not None and not isinstance(weights, Mapping):
        return _native(name, weights, overrides)
    med_config = overrides.pop("med_config", None)
    config = aigc_vqa_config(overrides.pop("sizes", sizes), **overrides)
    if not pretrained:
        return AigcVqaReward(config)
    unknown = sorted(set(weights or {}) - set(SOURCE_KEYS))
    if unknown:
        raise ValueError(f"{name}: unknown weights keys {unknown}; a weights dict holds {list(SOURCE_KEYS)}.")
    sources = {**(defaults or {}), **(weights or {})}
    missing = [key for key in ("dover", "imagereward") if sources.get(key) is None]
    if missing:
        raise WeightsNotFoundError(
            f"{name} has no published weights and no {' or '.join(missing)} source was given. "
            f"{WHERE_AIGC_VQA_WEIGHTS_COME_FROM}"
        )
    med_config = sources.get("med_config", med_config)
    return build_zero_shot(sources["dover"], sources["imagereward"], med_config=med_config, config=config)


def _native(name: str, weights: str | os.PathLike, overrides: dict[str, Any]) -> AigcVqaReward:
    if overrides:
        raise ValueError(f"{name}: overrides {sorted(overrides)} cannot change a saved model; edit its config.json instead.")
    if Path(str(weights)).expanduser().is_file():
        raise WeightsNotFoundError(
            f"{name}: {weights} is a single file; weights= takes a folder written by save_pretrained() "
            "(or its URL / hub id), or a dict {'dover': DOVER.pth, 'imagereward': ImageReward.pt}."
        )
    return AigcVqaReward.from_pretrained(weights)


@register_builtin_reward("aigc-vqa")
def build_aigc_vqa(weights: Any = None, pretrained: bool = True, **overrides: Any) -> AigcVqaReward:
    """Paper sizes and views. ``weights``: a native folder / URL / hub id, or a dict of ``dover``,
    ``imagereward`` (and ``med_config``) sources for the zero-shot start (missing keys: the public defaults).
    ``overrides``: ``sizes``, ``quality={...}``, ``alignment={...}``, ``med_config``."""
    return _build("aigc-vqa", "paper", weights, pretrained, DEFAULT_SOURCES, overrides)


@register_builtin_reward("aigc-vqa-tiny")
def build_aigc_vqa_tiny(weights: Any = None, pretrained: bool = True, **overrides: Any) -> AigcVqaReward:
    return _build("aigc-vqa-tiny", "tiny", weights, pretrained, None, overrides)
