"""Registered presets of the DOVER reward: ``dover`` (public weights) and ``dover-tiny`` (random, small)."""
from __future__ import annotations

from typing import Any

from ..errors import WeightsNotFoundError
from ..registry import register_builtin_reward
from .model import DoverConfig, DoverReward, dover_tiny_config
from .checkpoint import DOVER_DEFAULT_WEIGHTS, read_dover_state_dict


def _build(config: DoverConfig, weights: Any, pretrained: bool, default: Any, name: str) -> DoverReward:
    """Read the weights first (a missing file fails before the model is built), then build and load."""
    if weights is not None and not pretrained:
        raise ValueError(f"{name}: weights={weights!r} contradicts pretrained=False; pass one of them.")
    if not pretrained:
        return DoverReward(config)
    if weights is None and default is None:
        raise WeightsNotFoundError(
            f"{name} has no published weights: pass pretrained=False for random weights, or weights= a "
            "DOVER.pth-layout file of this size."
        )
    source = default if weights is None else weights
    state = read_dover_state_dict(source)
    return DoverReward(config).load_dover_checkpoint(state, name=str(source))


@register_builtin_reward("dover")
def build_dover(weights: Any = None, pretrained: bool = True, **overrides: Any) -> DoverReward:
    """Public DOVER sizes and evaluation views; ``weights``: DOVER.pth as a path, hub id or URL."""
    return _build(DoverConfig(**overrides), weights, pretrained, DOVER_DEFAULT_WEIGHTS, "dover")


@register_builtin_reward("dover-tiny")
def build_dover_tiny(weights: Any = None, pretrained: bool = True, **overrides: Any) -> DoverReward:
    return _build(dover_tiny_config(**overrides), weights, pretrained, None, "dover-tiny")
