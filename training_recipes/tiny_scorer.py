"""A small prompt-aware video quality scorer for smoke runs of the recipes on a laptop CPU.

It is a real ``VideoReward`` (trainable, differentiable, savable), sized to learn the synthetic
dataset in seconds, and shaped like AIGC-VQA so the three-stage recipe runs on it unchanged:
``score = technical + aesthetic + alignment``, each branch with its own frame encoder, under
AIGC-VQA's module names (``technical_backbone`` / ``technical_head``, ``aesthetic_backbone`` /
``aesthetic_head``, ``alignment``). Technical sees texture energy and its change over time,
aesthetic sees mean colour, alignment matches a hashed bag-of-words prompt embedding against
pooled visual features.
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


def _head(inputs: int, width: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, width), nn.GELU(), nn.Dropout(dropout), nn.Linear(width, 1))


class TextMatch(nn.Module):
    """Alignment: hashed bag-of-words prompt embedding dotted with projected pooled frame features."""

    def __init__(self, config: TinyScorerConfig):
        super().__init__()
        self.buckets = config.text_buckets
        self.frames = FrameEncoder(config.width)
        self.text = nn.EmbeddingBag(config.text_buckets, config.text_dim, mode="mean")
        self.visual_proj = nn.Linear(2 * config.width, config.text_dim)

    def forward(self, videos: torch.Tensor, prompts: list[str], compute_dtype: torch.dtype | None) -> torch.Tensor:
        with backbone_autocast(videos.device, compute_dtype):
            features = self.frames(videos)
        with full_precision(videos.device):
            ids, offsets = hash_tokens(prompts, self.buckets)
            text = self.text(ids.to(videos.device), offsets.to(videos.device))
            visual = self.visual_proj(features.float().mean(1))
            return (visual * text).sum(-1) / text.shape[-1] ** 0.5


@register_architecture
class TinyVideoScorer(VideoReward):
    """score = technical + aesthetic + alignment, all learned; for smoke runs and tests of the recipes."""

    architecture = "recipes-tiny-scorer"
    config_class = TinyScorerConfig
    requires_prompts = True
    component_names = ("technical", "aesthetic", "alignment")

    def __init__(self, config: TinyScorerConfig):
        super().__init__(config)
        width = config.width
        self.technical_backbone = FrameEncoder(width)
        self.technical_head = _head(6 * width, width, config.dropout)
        self.aesthetic_backbone = FrameEncoder(width)
        self.aesthetic_head = _head(2 * width, width, config.dropout)
        self.alignment = TextMatch(config)

    def _forward(self, videos: torch.Tensor, prompts: list[str] | None, **kwargs) -> RewardOutput:
        with backbone_autocast(videos.device, self.compute_dtype):
            texture, colour = self.technical_backbone(videos), self.aesthetic_backbone(videos)
        alignment = self.alignment(videos, prompts, self.compute_dtype)
        with full_precision(videos.device):
            texture = texture.float()
            change = (texture[:, 1:] - texture[:, :-1]).abs().mean(1) if texture.shape[1] > 1 else torch.zeros_like(texture[:, 0])
            statistics = torch.cat([texture.mean(1), texture.std(1, unbiased=False), change], dim=-1)
            technical = self.technical_head(statistics).squeeze(-1)
            aesthetic = self.aesthetic_head(colour.float().mean(1)).squeeze(-1)
        components = {"technical": technical, "aesthetic": aesthetic, "alignment": alignment}
        return RewardOutput(score=technical + aesthetic + alignment, components=components)


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
