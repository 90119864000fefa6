"""A small prompt-aware video quality scorer for smoke runs of the recipes on a laptop CPU.

It is a real ``VideoReward`` (trainable, differentiable, savable), sized to learn the synthetic
dataset in seconds: a per-frame conv net with temporal statistics for quality, and a hashed
bag-of-words prompt embedding matched against pooled visual features for alignment.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch
from torch import nn

from reward.base import VideoReward, register_architecture
from reward.errors import WeightsNotFoundError
from reward.output import RewardOutput
from reward.precision import backbone_autocast, full_precision, maybe_checkpoint


@dataclass
class TinyScorerConfig:
    width: int = 16
    text_buckets: int = 256
    text_dim: int = 16
    dropout: float = 0.1


def hash_tokens(prompts: list[str], buckets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower-cased words -> CRC32 buckets, as (flat ids, offsets) for ``nn.EmbeddingBag``."""
    ids, offsets = [], []
    for prompt in prompts:
        offsets.append(len(ids))
        ids.extend(zlib.crc32(word.encode()) % buckets for word in prompt.lower().split())
    return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


class FrameEncoder(nn.Module):
    """Two convs per frame; per-frame spatial mean and spatial std of the feature maps ``[B, T, 2 * width]``.

    The spatial std carries texture energy (what blur removes and noise adds), the mean carries colour.
    """

    def __init__(self, width: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GELU()
        )
        self.gradient_checkpointing = False

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        batch, frames = videos.shape[:2]
        maps = maybe_checkpoint(self.layers, (videos.flatten(0, 1) - 0.5) / 0.25, enabled=self.gradient_checkpointing)
        pooled = torch.cat([maps.mean(dim=(-2, -1)), maps.std(dim=(-2, -1), unbiased=False)], dim=1)
        return pooled.view(batch, frames, -1)


@register_architecture
class TinyVideoScorer(VideoReward):
    """score = quality + alignment, both learned; for smoke runs and tests of the training recipes."""

    architecture = "recipes-tiny-scorer"
    config_class = TinyScorerConfig
    requires_prompts = True
    component_names = ("quality", "alignment")

    def __init__(self, config: TinyScorerConfig):
        super().__init__(config)
        width = config.width
        self.frames = FrameEncoder(width)
        self.quality_head = nn.Sequential(
            nn.Linear(6 * width, width), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(width, 1)
        )
        self.text = nn.EmbeddingBag(config.text_buckets, config.text_dim, mode="mean")
        self.visual_proj = nn.Linear(2 * width, config.text_dim)

    def _forward(self, videos: torch.Tensor, prompts: list[str] | None, **kwargs) -> RewardOutput:
        with backbone_autocast(videos.device, self.compute_dtype):
            features = self.frames(videos)
        with full_precision(videos.device):
            features = features.float()
            motion = (features[:, 1:] - features[:, :-1]).abs().mean(1) if features.shape[1] > 1 else torch.zeros_like(features[:, 0])
            pooled = features.mean(1)
            quality = self.quality_head(torch.cat([pooled, features.std(1, unbiased=False), motion], dim=-1)).squeeze(-1)
            ids, offsets = hash_tokens(prompts, self.config.text_buckets)
            text = self.text(ids.to(videos.device), offsets.to(videos.device))
            alignment = (self.visual_proj(pooled) * text).sum(-1) / self.config.text_dim**0.5
        return RewardOutput(score=quality + alignment, components={"quality": quality, "alignment": alignment})


def build_tiny_scorer(weights=None, pretrained: bool = False, **overrides) -> TinyVideoScorer:
    """Builder for ``model.target``: random weights, or a native folder written by ``save_pretrained``."""
    if weights is not None:
        return TinyVideoScorer.from_pretrained(weights)
    if pretrained:
        raise WeightsNotFoundError(
            "the tiny scorer has no published weights: set model.pretrained=false, or model.weights to a folder "
            "written by save_pretrained (e.g. a previous run's best/)."
        )
    return TinyVideoScorer(TinyScorerConfig(**overrides))
