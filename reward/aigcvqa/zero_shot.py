"""AIGC-VQA's public starting point: DOVER.pth (technical + aesthetic) + ImageReward.pt (alignment), adapter at identity.

No AIGC-VQA weights are published. This zero-shot model scores ``q_t + q_a + s_a`` with DOVER's
raw branch scores and ImageReward's score of the prompt against the frames; the training recipe
starts from it.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import torch

from ..builtin_presets import BUILTIN_PRESETS
from ..errors import WeightsNotFoundError
from ..dover.checkpoint import DOVER_DEFAULT_WEIGHTS, read_dover_state_dict
from ..imagereward.checkpoint import HUB_REPO as IMAGEREWARD_HUB_REPO
from ..imagereward.checkpoint import load_imagereward_weights, read_imagereward
from .model import AigcVqaConfig, AigcVqaReward

Source = str | os.PathLike | Mapping[str, torch.Tensor]

#: Where the zero-shot model's parts come from by default (``weights=`` dict keys).
DEFAULT_SOURCES = {"dover": DOVER_DEFAULT_WEIGHTS, "imagereward": IMAGEREWARD_HUB_REPO}

#: Where the zero-shot parts come from and how to pass them (the ``aigc-vqa`` preset's listed weight sources).
WHERE_AIGC_VQA_WEIGHTS_COME_FROM = BUILTIN_PRESETS["aigc-vqa"].weight_sources


def build_zero_shot(
    dover_source: Source,
    imagereward_source: Source,
    *,
    med_config: str | os.PathLike | Mapping[str, Any] | None = None,
    config: AigcVqaConfig | None = None,
) -> AigcVqaReward:
    """AIGC-VQA with DOVER's branches and heads, ImageReward's BLIP and head, and an identity ST-Adapter.

    Sources are paths, hub ids, URLs or state dicts. ``med_config`` (ImageReward's BERT config,
    found beside a local checkpoint when not given) sets the text-encoder sizes; ``config`` the
    other sizes and the views (default: the paper's). Both checkpoints load strictly: a wrong or
    truncated file raises ``CheckpointError`` listing the keys. Returns the model in eval mode.
    """
    config = config or AigcVqaConfig()
    dover_state = _read(read_dover_state_dict, dover_source)
    imagereward_state, blip = _read(read_imagereward, imagereward_source, config.alignment.blip, med_config)
    config = dataclasses.replace(config, alignment=dataclasses.replace(config.alignment, blip=blip))
    model = AigcVqaReward(config)
    model.load_dover_checkpoint(dover_state, name=_label(dover_source, "the DOVER state dict"))
    load_imagereward_weights(model.alignment, imagereward_state, name=_label(imagereward_source, "the given state dict"))
    model.alignment.adapter.reset_to_identity()
    return model.eval()


def _read(reader, source: Source, *args: Any):
    try:
        return reader(source, *args)
    except WeightsNotFoundError as error:
        raise WeightsNotFoundError(f"{error} {WHERE_AIGC_VQA_WEIGHTS_COME_FROM}") from error


def _label(source: Source, fallback: str) -> str:
    return fallback if isinstance(source, Mapping) else str(source)
