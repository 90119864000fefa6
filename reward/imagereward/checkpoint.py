"""Load ImageReward.pt into our BLIP encoders and reward head, strictly, with errors that list keys.

ImageReward keeps the original BLIP names (``blip.visual_encoder.blocks.N.attn.qkv``); ours are
transformers' (``blip.vision_model.encoder.layers.N.self_attn.qkv``). Text-encoder and head names
are the same on both sides. A ``module.`` prefix (DataParallel copies) and a missing
``position_ids`` buffer are both accepted.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoints import load_state_dict_strict, load_torch_checkpoint, strip_prefix
from ..errors import WeightsNotFoundError
from ..weights import is_url, resolve_file
from ..blocks.blip import BlipSpec

#: Hub repository of the public release (files ImageReward.pt and med_config.json).
HUB_REPO = "THUDM/ImageReward"
CHECKPOINT_NAME = "ImageReward.pt"
MED_CONFIG_NAME = "med_config.json"

#: Checkpoint keys that the reward never reads: BLIP's contrastive projections and a constant buffer.
UNUSED_KEYS = re.compile(r"^blip\.(vision_proj|text_proj)\.|^blip\.text_encoder\.embeddings\.position_ids$")

_VISION_RENAMES = (
    (re.compile(r"^blip\.visual_encoder\.cls_token$"), "blip.vision_model.embeddings.class_embedding"),
    (re.compile(r"^blip\.visual_encoder\.pos_embed$"), "blip.vision_model.embeddings.position_embedding"),
    (re.compile(r"^blip\.visual_encoder\.patch_embed\.proj\."), "blip.vision_model.embeddings.patch_embedding."),
    (re.compile(r"^blip\.visual_encoder\.blocks\.(\d+)\.norm1\."), r"blip.vision_model.encoder.layers.\1.layer_norm1."),
    (re.compile(r"^blip\.visual_encoder\.blocks\.(\d+)\.norm2\."), r"blip.vision_model.encoder.layers.\1.layer_norm2."),
    (re.compile(r"^blip\.visual_encoder\.blocks\.(\d+)\.attn\.qkv\."), r"blip.vision_model.encoder.layers.\1.self_attn.qkv."),
    (re.compile(r"^blip\.visual_encoder\.blocks\.(\d+)\.attn\.proj\."), r"blip.vision_model.encoder.layers.\1.self_attn.projection."),
    (re.compile(r"^blip\.visual_encoder\.blocks\.(\d+)\.mlp\."), r"blip.vision_model.encoder.layers.\1.mlp."),
    (re.compile(r"^blip\.visual_encoder\.norm\."), "blip.vision_model.post_layernorm."),
)


def convert_imagereward_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ImageReward.pt keys -> our ``blip.*`` / ``mlp.*`` keys; unused keys dropped, unknown keys kept as they are."""
    converted = {}
    for key, value in strip_prefix(state, "module.").items():
        if UNUSED_KEYS.search(key):
            continue
        for pattern, replacement in _VISION_RENAMES:
            key, count = pattern.subn(replacement, key)
            if count:
                break
        converted[key] = value
    return converted


def read_imagereward_checkpoint(source: str | os.PathLike | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The raw state dict from a path, a folder holding ImageReward.pt, a hub id, a URL, or a dict."""
    if isinstance(source, Mapping):
        return dict(source)
    return load_torch_checkpoint(resolve_file(source, filename=CHECKPOINT_NAME, what="ImageReward checkpoint"))


def find_med_config(source: str | os.PathLike | Mapping[str, torch.Tensor]) -> Path | None:
    """``med_config.json`` beside a local checkpoint or in the hub repo of the weights; None when there is none.

    It only matters for checkpoints of other sizes: the strict load still names any size mismatch.
    """
    if isinstance(source, Mapping) or is_url(str(source)):
        return None
    path = Path(str(source)).expanduser()
    if path.exists():
        candidate = (path if path.is_dir() else path.parent) / MED_CONFIG_NAME
        return candidate if candidate.is_file() else None
    repo_id = "/".join(str(source).strip("/").split("/")[:2])
    try:
        return resolve_file(repo_id, filename=MED_CONFIG_NAME, what="ImageReward med_config.json")
    except WeightsNotFoundError:
        return None


def read_imagereward(
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    spec: BlipSpec,
    med_config: str | os.PathLike | Mapping[str, Any] | None = None,
) -> tuple[dict[str, torch.Tensor], BlipSpec]:
    """The raw state dict at ``source`` and ``spec`` with the text sizes of its ``med_config.json``.

    ``med_config`` is given or found beside the checkpoint (``find_med_config``); without one the
    spec stays as it is. Build the model from the returned spec, then ``load_imagereward_weights``.
    """
    state = read_imagereward_checkpoint(source)
    med_config = med_config if med_config is not None else find_med_config(source)
    return state, spec if med_config is None else spec.with_med_config(med_config)


def load_imagereward_weights(
    module: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor], *, name: str | None = None
) -> None:
    """Load ImageReward weights into ``module.blip`` (``BlipEncoders``) and ``module.mlp`` (``ImageRewardHead``).

    ``source`` is anything ``read_imagereward_checkpoint`` takes; ``name`` labels a dict in errors.
    Strict over those two parts: any missing, unexpected or mis-shaped key raises a
    ``CheckpointError`` that lists them. Other submodules (e.g. an ST-Adapter) are left untouched.
    """
    state = convert_imagereward_state_dict(read_imagereward_checkpoint(source))
    target = nn.ModuleDict({"blip": module.blip, "mlp": module.mlp})
    label = name or ("the given state dict" if isinstance(source, Mapping) else str(source))
    load_state_dict_strict(target, state, source=f"ImageReward checkpoint {label}")
