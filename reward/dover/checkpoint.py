"""Loading the official DOVER checkpoints (DOVER.pth, DOVER_plus_plus.pth) into our modules.

Our modules carry DOVER.pth's names, so conversion is only: unwrap, strip ``module.``, pick the
branches asked for, and load strictly (an error lists missing / unexpected / mis-shaped keys).
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from ..builtin_presets import BUILTIN_PRESETS
from ..checkpoints import load_state_dict_strict, load_torch_checkpoint, strip_prefix
from ..errors import WeightsNotFoundError
from ..weights import resolve_file

#: Hugging Face repo of the DOVER authors holding ``DOVER.pth`` and ``DOVER_plus_plus.pth``.
DOVER_HUB_REPO = "teowu/DOVER"
#: Default source of the public DOVER weights, as accepted by ``weights=`` (hub repo / file).
DOVER_DEFAULT_WEIGHTS = f"{DOVER_HUB_REPO}/DOVER.pth"
#: Top-level key prefixes of DOVER.pth, one per module.
DOVER_PARTS = ("technical_backbone", "aesthetic_backbone", "technical_head", "aesthetic_head")

#: Where DOVER.pth comes from and how to pass it (the ``dover`` preset's listed weight sources).
WHERE_DOVER_WEIGHTS_COME_FROM = BUILTIN_PRESETS["dover"].weight_sources


class DoverBranches(nn.ModuleDict):
    """The modules being loaded from a DOVER checkpoint, keyed by their checkpoint prefix."""


def read_dover_state_dict(source: str | os.PathLike | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A DOVER state dict from a path, hub id (``owner/repo/file``), URL or an in-memory dict.

    Training wrappers (``state_dict`` / ``model``) and a DataParallel ``module.`` prefix are removed.
    """
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        try:
            path = resolve_file(source, filename="DOVER.pth", what="DOVER weights")
        except WeightsNotFoundError as error:
            raise WeightsNotFoundError(f"{error} {WHERE_DOVER_WEIGHTS_COME_FROM}") from error
        state = load_torch_checkpoint(path)
    return strip_prefix(state, "module.")


def load_dover_weights(
    parts: Mapping[str, nn.Module], source: str | os.PathLike | Mapping[str, torch.Tensor], *, name: str | None = None
) -> None:
    """Load the DOVER checkpoint ``source`` strictly into ``parts`` (prefix -> module, e.g.
    ``{"technical_backbone": swin, "technical_head": head}``).

    Branches not asked for are skipped; any other difference raises ``CheckpointError`` listing keys.
    """
    unknown = sorted(set(parts) - set(DOVER_PARTS))
    if unknown:
        raise ValueError(f"unknown DOVER parts {unknown}; choose from {DOVER_PARTS}")
    state = read_dover_state_dict(source)
    skipped = tuple(f"{part}." for part in DOVER_PARTS if part not in parts)
    state = {k: v for k, v in state.items() if not k.startswith(skipped)} if skipped else state
    label = name or (str(source) if not isinstance(source, Mapping) else "the DOVER state dict")
    load_state_dict_strict(DoverBranches(dict(parts)), state, source=label)
