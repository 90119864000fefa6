"""Registered ImageReward presets: ``imagereward`` (the public weights) and ``imagereward-tiny`` (random, offline)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import WeightsNotFoundError
from ..registry import register_builtin_reward
from ..blocks.blip import BLIP_TINY, replace_config
from .model import ImageRewardConfig, ImageRewardVideo
from .checkpoint import (
    HUB_REPO,
    load_imagereward_weights,
    read_imagereward,
)
from .tokenizer import TINY_VOCAB

WeightsSource = str | os.PathLike | Mapping[str, torch.Tensor] | None


def build_imagereward(
    base: ImageRewardConfig,
    *,
    weights: WeightsSource,
    default_weights: str | None,
    med_config: str | os.PathLike | Mapping[str, Any] | None = None,
    **overrides: Any,
) -> ImageRewardVideo:
    """Build from ``base`` + ``overrides`` and load ImageReward weights from ``weights`` (or ``default_weights``).

    ``med_config`` (ImageReward's BERT config; found beside the checkpoint when not given) sets
    the text-encoder sizes. ``weights=None`` with ``default_weights=None`` keeps random weights.
    """
    source = weights if weights is not None else default_weights
    config = replace_config(base, **overrides)
    if source is None:
        if med_config is not None:
            config = replace_config(config, blip=config.blip.with_med_config(med_config))
        return ImageRewardVideo(config)
    state, spec = read_imagereward(source, config.blip, med_config)
    model = ImageRewardVideo(replace_config(config, blip=spec))
    load_imagereward_weights(model.scorer, state, name=None if isinstance(source, Mapping) else str(source))
    return model


@register_builtin_reward("imagereward")
def imagereward(weights: WeightsSource = None, pretrained: bool = True, **overrides: Any) -> ImageRewardVideo:
    """The public ImageReward-v1.0; ``weights`` may be a local file or folder, a hub id or a URL."""
    return build_imagereward(
        ImageRewardConfig(), weights=weights, default_weights=HUB_REPO if pretrained else None, **overrides
    )


@register_builtin_reward("imagereward-tiny")
def imagereward_tiny(weights: WeightsSource = None, pretrained: bool = True, **overrides: Any) -> ImageRewardVideo:
    """Random weights at BLIP_TINY sizes; needs ``pretrained=False`` unless ``weights`` are given."""
    if weights is None and pretrained:
        raise WeightsNotFoundError(
            "imagereward-tiny has no published weights: pass pretrained=False for random weights, "
            "or weights=/path/to/ImageReward.pt of the tiny size."
        )
    base = ImageRewardConfig(blip=BLIP_TINY, tokenizer=TINY_VOCAB)
    return build_imagereward(base, weights=weights, default_weights=None, **overrides)
