"""Registered presets of the DOVER reward: ``dover`` (public weights) and ``dover-tiny`` (random, small)."""
from __future__ import annotations

from typing import Any

from ..errors import WeightsNotFoundError
from ..registry import register_reward
from .dover import DoverConfig, DoverReward, dover_tiny_config
from .dover_checkpoint import DOVER_DEFAULT_WEIGHTS, WHERE_DOVER_WEIGHTS_COME_FROM, read_dover_state_dict


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


@register_reward(
    "dover",
    description="DOVER overall video quality (technical Swin-3D + aesthetic ConvNeXt-3D, score-level fusion)",
    components=DoverReward.component_names,
    weight_sources=WHERE_DOVER_WEIGHTS_COME_FROM,
    score_range=(0.0, 1.0),
    tags=("video-quality", "no-prompt"),
)
def build_dover(weights: Any = None, pretrained: bool = True, **overrides: Any) -> DoverReward:
    """Public DOVER sizes and evaluation views; ``weights``: DOVER.pth as a path, hub id or URL."""
    return _build(DoverConfig(**overrides), weights, pretrained, DOVER_DEFAULT_WEIGHTS, "dover")


@register_reward(
    "dover-tiny",
    description="DOVER with reduced widths and 16-frame views (random weights; for tests and quick checks)",
    components=DoverReward.component_names,
    weight_sources="none published: random weights (pretrained=False) or a DOVER.pth-layout file of the tiny size",
    score_range=(0.0, 1.0),
    tags=("video-quality", "no-prompt", "tiny"),
)
def build_dover_tiny(weights: Any = None, pretrained: bool = True, **overrides: Any) -> DoverReward:
    return _build(dover_tiny_config(**overrides), weights, pretrained, None, "dover-tiny")
