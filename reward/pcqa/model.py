"""PCQA: prompt-conditioned quality of AI-generated videos and images (T = 1) as a differentiable reward."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..base import VideoReward, register_architecture
from ..output import RewardOutput
from ..precision import full_precision
from .config import PCQAConfig, TextTowerConfig
from .text import HybridPromptEncoder, resolve_text_checkpoint
from .vision import FrameBackbone, create_timm_backbone


class PCQAScorer(nn.Module):
    """The trainable part of one PCQA model: per-frame backbone, temporal convs, adapters, mixer, MLP head.

    Pooled frame features are layer-normalised, passed through two Conv1d(k=3) over time and
    averaged (a single frame skips the temporal layers), then mapped to ``adapter_dim`` and mixed
    with the adapted prompt embedding by an element-wise product (``dot``) or concatenation.
    """

    def __init__(self, config: PCQAConfig, prompt_dim: int, backbone: FrameBackbone):
        super().__init__()
        width = backbone.num_features
        self.mixer = config.mixer
        self.vision = backbone
        self.feature_norm = nn.LayerNorm(width)
        self.temporal = nn.Sequential(
            nn.Conv1d(width, width, kernel_size=3, padding=1), nn.GELU(), nn.Conv1d(width, width, kernel_size=3, padding=1)
        )
        self.vision_adapter = nn.Sequential(nn.Linear(width, config.adapter_dim), nn.GELU())
        self.prompt_adapter = nn.Sequential(nn.Linear(prompt_dim, config.adapter_dim), nn.GELU())
        mixed = config.adapter_dim * (2 if config.mixer == "concat" else 1)
        self.head = nn.Sequential(nn.Linear(mixed, config.head_hidden), nn.GELU(), nn.Linear(config.head_hidden, 1))

    def forward(
        self, videos: torch.Tensor, prompt_embeddings: torch.Tensor, compute_dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Raw predictions ``[B]`` for ``videos [B, T, 3, H, W]`` and prompt embeddings ``[B, D]``."""
        frames = self.vision(videos, compute_dtype)
        with full_precision(frames.device):
            x = self.feature_norm(frames)
            if x.shape[1] > 1:
                x = self.temporal(x.transpose(1, 2)).mean(dim=2)
            else:
                x = x[:, 0]
            vision = self.vision_adapter(x)
            prompt = self.prompt_adapter(prompt_embeddings.to(vision.dtype))
            mixed = vision * prompt if self.mixer == "dot" else torch.cat([vision, prompt], dim=-1)
            return self.head(mixed).squeeze(-1)


def build_scorer(
    config: PCQAConfig, prompt_dim: int, *, pretrained: bool = False, backbone_weights: str | Path | None = None
) -> PCQAScorer:
    """A scorer for ``config``; ``pretrained`` loads the backbone's ImageNet weights through timm."""
    model = create_timm_backbone(config.backbone, config.backbone_kwargs, pretrained=pretrained, weights_file=backbone_weights)
    backbone = FrameBackbone(
        model,
        resolution=config.resolution,
        num_frames=config.num_frames,
        mean=config.pixel_mean or tuple(model.pretrained_cfg["mean"]),
        std=config.pixel_std or tuple(model.pretrained_cfg["std"]),
    )
    return PCQAScorer(config, prompt_dim, backbone)


def build_prompt_encoder(
    towers: Sequence[TextTowerConfig], cache_size: int, *, pretrained: bool = False, text_weights: Sequence[str] | None = None
) -> HybridPromptEncoder:
    """The hybrid encoder; ``pretrained`` loads each tower from ``text_weights`` or its open_clip tag (hub)."""
    if not pretrained:
        return HybridPromptEncoder(towers, cache_size)
    files = list(text_weights) if text_weights else [resolve_text_checkpoint(tower) for tower in towers]
    if len(files) != len(towers):
        raise ValueError(f"text_weights gives {len(files)} files for {len(towers)} text towers; give one per tower.")
    encoder = HybridPromptEncoder(towers, cache_size)
    encoder.load_pretrained(files)
    return encoder


def resolved_config(config: PCQAConfig, encoder: HybridPromptEncoder, scorer: PCQAScorer) -> PCQAConfig:
    """``config`` with every default written out (text tower architecture, pixel statistics)."""
    return dataclasses.replace(
        config,
        text_towers=list(encoder.tower_configs),
        pixel_mean=scorer.vision.pixel_mean,
        pixel_std=scorer.vision.pixel_std,
    )


@register_architecture
class PCQAReward(VideoReward):
    """One PCQA model: frozen hybrid prompt encoder + a trainable ``PCQAScorer``; score = predicted normalised MOS.

    ``PCQAReward(config)`` has random weights; ``from_backbones(config)`` starts training from
    pretrained text towers (open_clip) and an ImageNet backbone (timm). No trained PCQA weights
    are public: train with ``training_recipes`` and reload the saved folder.
    """

    architecture = "pcqa"
    config_class = PCQAConfig
    requires_prompts = True
    component_names = ("quality",)

    def __init__(
        self,
        config: PCQAConfig,
        *,
        prompt_encoder: HybridPromptEncoder | None = None,
        scorer: PCQAScorer | None = None,
    ):
        prompt_encoder = prompt_encoder or HybridPromptEncoder(config.text_towers, config.prompt_cache_size)
        scorer = scorer or build_scorer(config, prompt_encoder.embed_dim)
        super().__init__(resolved_config(config, prompt_encoder, scorer))
        self.prompt_encoder = prompt_encoder
        self.scorer = scorer

    @classmethod
    def from_backbones(
        cls,
        config: PCQAConfig,
        *,
        text_weights: Sequence[str] | None = None,
        backbone_weights: str | Path | None = None,
    ) -> "PCQAReward":
        """A training start: pretrained text towers and backbone, random adapters and head (hub at run time)."""
        encoder = build_prompt_encoder(config.text_towers, config.prompt_cache_size, pretrained=True, text_weights=text_weights)
        scorer = build_scorer(config, encoder.embed_dim, pretrained=True, backbone_weights=backbone_weights)
        return cls(config, prompt_encoder=encoder, scorer=scorer)

    def compile_targets(self) -> dict[str, tuple[nn.Module, str]]:
        """The timm frame backbone; the text towers run once per new prompt (cached), so compiling them does not pay."""
        return {"scorer.vision.model": (self.scorer.vision.model, "forward_features")}

    def _forward(self, videos: torch.Tensor, prompts: list[str] | None) -> RewardOutput:
        embeddings = self.prompt_encoder(prompts, dtype=self.compute_dtype)
        quality = self.scorer(videos, embeddings, self.compute_dtype)
        return RewardOutput(score=quality, components={"quality": quality})
