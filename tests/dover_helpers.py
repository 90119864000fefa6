"""Shared pieces of the DOVER tests: the reduced ("small") sizes of the golden reference checkpoint."""
from __future__ import annotations

import torch

from reward.blocks.convnext3d import ConvNeXt3D
from reward.dover.model import dover_tiny_config
from reward.dover.head import VQAHead
from reward.blocks.swin3d import SwinTransformer3D

#: Sizes of golden_small/dover_small_DOVER.pth, which are the dover-tiny sizes (test_dover_config checks it).
SMALL_SWIN = dover_tiny_config().technical
SMALL_CONVNEXT = dover_tiny_config().aesthetic


def small_branches() -> dict[str, torch.nn.Module]:
    """Randomly initialised modules of the small size, keyed by their DOVER.pth prefix."""
    return {
        "technical_backbone": SwinTransformer3D(SMALL_SWIN),
        "aesthetic_backbone": ConvNeXt3D(SMALL_CONVNEXT),
        "technical_head": VQAHead(192, 64),
        "aesthetic_head": VQAHead(192, 64),
    }


def normalised_view(golden: dict, key: str) -> torch.Tensor:
    """A [1, 3, T, 224, 224] model input from stored uint8 levels via the exact normalisation table."""
    levels = golden[key].long()
    return golden["norm_lut"][torch.arange(3)[:, None, None, None], levels][None]
