"""DOVER (Wu et al., ICCV 2023) as a differentiable reward: technical + aesthetic branches, fused.

``score`` is DOVER's overall quality in (0, 1); components ``technical`` and ``aesthetic`` are
the per-branch scores DOVER publishes (its sigmoid-normalised branch means, also in (0, 1)).
The raw branch means (what AIGC-VQA adds up) and the score maps are in ``extras`` on request.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from ..base import VideoReward, register_architecture
from ..output import RewardOutput
from ..precision import backbone_autocast, full_precision
from ..video.views import AestheticView, TechnicalView, aesthetic_view, technical_view
from ..blocks.convnext3d import ConvNeXt3D, ConvNeXt3DConfig
from .checkpoint import DOVER_PARTS, load_dover_weights
from .head import VQAHead, map_mean
from ..blocks.swin3d import Swin3DConfig, SwinTransformer3D

#: DOVER's score-level fusion: per-branch (mean, std) used to standardise the raw branch means,
#: and the weights of the standardised technical and aesthetic scores.
TECHNICAL_MEAN, TECHNICAL_STD = 0.1107, 0.07355
AESTHETIC_MEAN, AESTHETIC_STD = -0.08285, 0.03774
TECHNICAL_WEIGHT, AESTHETIC_WEIGHT = 0.6104, 0.3896


class DoverFusion(NamedTuple):
    """DOVER's fused scores (float64): standardised ``t``, ``a``, their blend ``x`` and the sigmoids."""

    t: torch.Tensor
    a: torch.Tensor
    x: torch.Tensor
    technical: torch.Tensor
    aesthetic: torch.Tensor
    overall: torch.Tensor


def dover_fusion(technical_raw: torch.Tensor, aesthetic_raw: torch.Tensor) -> DoverFusion:
    """Fuse raw branch means (map means) the way the public DOVER evaluation does, in float64."""
    t = (technical_raw.double() - TECHNICAL_MEAN) / TECHNICAL_STD
    a = (aesthetic_raw.double() - AESTHETIC_MEAN) / AESTHETIC_STD
    x = TECHNICAL_WEIGHT * t + AESTHETIC_WEIGHT * a
    return DoverFusion(t, a, x, torch.sigmoid(t), torch.sigmoid(a), torch.sigmoid(x))


def _as_dataclass(value: Any, cls: type) -> Any:
    return cls(**value) if isinstance(value, dict) else value


@dataclass
class DoverConfig:
    """Branch sizes, head sizes and views. The defaults are the public DOVER model and its evaluation:
    technical 3 clips x 32 frames (interval 2) of 7x7 fragments of 32 pixels aligned over 32 frames;
    aesthetic 32 frames (one per segment) resized to 224x224. Smaller views (``technical_fragments``,
    ``technical_fragment_size``, ``aesthetic_size``) make small models cheap to train.
    """

    technical: Swin3DConfig = field(default_factory=Swin3DConfig)
    aesthetic: ConvNeXt3DConfig = field(default_factory=ConvNeXt3DConfig)
    head_hidden_channels: int = 64
    head_dropout: float = 0.5
    technical_clip_len: int = 32
    technical_num_clips: int = 3
    technical_frame_interval: int = 2
    technical_aligned: int = 32
    aesthetic_clip_len: int = 32
    aesthetic_t_frag: int = 32
    aesthetic_frame_interval: int = 2
    technical_fragments: int = 7
    technical_fragment_size: int = 32
    aesthetic_size: int = 224

    def __post_init__(self) -> None:
        self.technical = _as_dataclass(self.technical, Swin3DConfig)
        self.aesthetic = _as_dataclass(self.aesthetic, ConvNeXt3DConfig)


def dover_tiny_config(**overrides: Any) -> DoverConfig:
    """The golden reference's reduced sizes and views (widths 24-192, 16 frames, 1 clip): fast enough for tests."""
    config = DoverConfig(
        technical=Swin3DConfig(embed_dim=24, depths=(1, 1, 2, 1), num_heads=(2, 4, 8, 16)),
        aesthetic=ConvNeXt3DConfig(dims=(24, 48, 96, 192), depths=(1, 1, 2, 1)),
        technical_clip_len=16,
        technical_num_clips=1,
        technical_frame_interval=1,
        technical_aligned=8,
        aesthetic_clip_len=16,
        aesthetic_t_frag=16,
        aesthetic_frame_interval=2,
    )
    return dataclasses.replace(config, **overrides)


@dataclass(frozen=True)
class ViewSampling:
    """Which views the quality branches see: explicit ``*_frame_indices`` / ``fragment_offsets`` ([7, 7, chunks]
    or [B, 7, 7, chunks] each, for h and w) replay a view; ``generator`` (fragment offsets) and ``frame_rng``
    (frame starts) draw random ones as DOVER does. Nothing set: the deterministic (centred) views."""

    technical_frame_indices: torch.Tensor | None = None
    aesthetic_frame_indices: torch.Tensor | None = None
    fragment_offsets: tuple[torch.Tensor, torch.Tensor] | None = None
    generator: torch.Generator | None = None
    frame_rng: Any = None


class QualityScores(NamedTuple):
    """DOVER's two branches on one batch: the views, the head maps ``[N, 1, T', H', W']`` and the raw
    branch scores ``[B]`` (map means, fp32), plus ``extras()``: the maps and view metadata for diagnostics."""

    technical: TechnicalView
    aesthetic: AestheticView
    technical_map: torch.Tensor
    aesthetic_map: torch.Tensor
    technical_raw: torch.Tensor
    aesthetic_raw: torch.Tensor

    def extras(self) -> dict[str, Any]:
        """``technical_map`` [B, clips, T', n, n] (a cell per fragment), ``aesthetic_map`` [B, 1, T', h, w], the raw scores, the
        frame indices of both views and ``fragment_boxes`` (the keys ``reward.explain`` reads)."""
        batch = self.technical_raw.shape[0]
        technical_map = per_fragment(self.technical_map, self.technical.grid_h.numel())
        return dict(
            technical_map=technical_map.reshape(batch, -1, *technical_map.shape[2:]).squeeze(2),
            aesthetic_map=self.aesthetic_map.reshape(batch, -1, *self.aesthetic_map.shape[2:]).squeeze(2),
            technical_raw=self.technical_raw,
            aesthetic_raw=self.aesthetic_raw,
            technical_frame_indices=self.technical.frame_indices,
            aesthetic_frame_indices=self.aesthetic.frame_indices,
            fragment_boxes=self.technical.fragment_boxes(),
        )


def per_fragment(score_map: torch.Tensor, fragments: int) -> torch.Tensor:
    """A ``[..., h, w]`` technical map as one cell per fragment ``[..., n, n]``: fragment ``i`` takes cell
    ``i * h // n`` (the identity for DOVER's views, where the map is the 7x7 fragment grid; smaller
    fragments share a cell of the backbone's 32-pixel output stride)."""
    rows = torch.arange(fragments, device=score_map.device) * score_map.shape[-2] // fragments
    cols = torch.arange(fragments, device=score_map.device) * score_map.shape[-1] // fragments
    return score_map.index_select(-2, rows).index_select(-1, cols)


class QualityBranches:
    """Mixin for rewards built on DOVER's technical and aesthetic branches (DOVER and AIGC-VQA).

    Adds the four modules under DOVER.pth's names (``technical_backbone``, ``aesthetic_backbone``,
    ``technical_head``, ``aesthetic_head``), so the official checkpoint loads as it is, and runs
    the views, backbones (autocast) and heads (fp32) described by a :class:`DoverConfig`.
    """

    def build_quality_branches(self, config: DoverConfig) -> None:
        self.technical_backbone = SwinTransformer3D(config.technical)
        self.aesthetic_backbone = ConvNeXt3D(config.aesthetic)
        self.technical_head = VQAHead(config.technical.num_features, config.head_hidden_channels, config.head_dropout)
        self.aesthetic_head = VQAHead(config.aesthetic.num_features, config.head_hidden_channels, config.head_dropout)

    def quality_compile_targets(self) -> dict[str, tuple[torch.nn.Module, str]]:
        """The two quality backbones, for ``VideoReward.compile``."""
        return {"technical_backbone": (self.technical_backbone, "forward"), "aesthetic_backbone": (self.aesthetic_backbone, "forward")}

    def load_dover_checkpoint(self, source: Any, *, name: str | None = None):
        """Load DOVER.pth (or a file of the same layout: path, hub id, URL or state dict) strictly."""
        load_dover_weights({part: getattr(self, part) for part in DOVER_PARTS}, source, name=name)
        return self

    def quality_scores(
        self, videos: torch.Tensor, config: DoverConfig, sampling: ViewSampling = ViewSampling()
    ) -> QualityScores:
        """Views of ``videos`` [B, T, 3, H, W] drawn per ``sampling`` -> backbones (autocast) -> head maps
        and raw scores (fp32)."""
        technical = technical_view(
            videos,
            clip_len=config.technical_clip_len,
            num_clips=config.technical_num_clips,
            frame_interval=config.technical_frame_interval,
            aligned=config.technical_aligned,
            offsets=sampling.fragment_offsets,
            generator=sampling.generator,
            frame_indices=sampling.technical_frame_indices,
            frame_rng=sampling.frame_rng,
            fragments=config.technical_fragments,
            fragment_size=config.technical_fragment_size,
        )
        aesthetic = aesthetic_view(
            videos,
            clip_len=config.aesthetic_clip_len,
            t_frag=config.aesthetic_t_frag,
            frame_interval=config.aesthetic_frame_interval,
            frame_indices=sampling.aesthetic_frame_indices,
            frame_rng=sampling.frame_rng,
            size=config.aesthetic_size,
        )
        batch = videos.shape[0]
        technical_map, aesthetic_map = self.score_maps(technical.pixels, aesthetic.pixels)
        with full_precision(videos.device):
            technical_raw = map_mean(technical_map, batch)
            aesthetic_raw = map_mean(aesthetic_map, batch)
        return QualityScores(technical, aesthetic, technical_map, aesthetic_map, technical_raw, aesthetic_raw)

    def score_maps(self, technical_pixels: torch.Tensor, aesthetic_pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Head maps ``[N, 1, T', H', W']`` of normalised views (backbones under autocast, heads in fp32)."""
        device = technical_pixels.device
        dtype = self.technical_head.fc_hid.weight.dtype
        with backbone_autocast(device, self.compute_dtype):
            technical_features = self.technical_backbone(technical_pixels.to(dtype))
            aesthetic_features = self.aesthetic_backbone(aesthetic_pixels.to(dtype))
        with full_precision(device):
            return self.technical_head(technical_features.to(dtype)), self.aesthetic_head(aesthetic_features.to(dtype))


@register_architecture
class DoverReward(QualityBranches, VideoReward):
    """DOVER's overall quality of each video; prompts are not used.

    Submodules carry DOVER.pth's names (``technical_backbone``, ``aesthetic_backbone``,
    ``technical_head``, ``aesthetic_head``), so the official checkpoint loads as it is.
    """

    architecture = "dover"
    config_class = DoverConfig
    requires_prompts = False
    component_names = ("technical", "aesthetic")

    def __init__(self, config: DoverConfig):
        super().__init__(config)
        self.build_quality_branches(config)

    def compile_targets(self) -> dict[str, tuple[torch.nn.Module, str]]:
        return self.quality_compile_targets()

    def _forward(
        self, videos: torch.Tensor, prompts: list[str] | None, *, return_maps: bool = False, **view_sampling: Any
    ) -> RewardOutput:
        """Views -> backbones (autocast) -> heads (fp32) -> DOVER fusion (fp64); ``view_sampling`` takes
        the fields of :class:`ViewSampling`."""
        quality = self.quality_scores(videos, self.config, ViewSampling(**view_sampling))
        with full_precision(videos.device):
            fused = dover_fusion(quality.technical_raw, quality.aesthetic_raw)
        dtype = quality.technical_map.dtype
        output = RewardOutput(
            score=fused.overall.to(dtype),
            components={"technical": fused.technical.to(dtype), "aesthetic": fused.aesthetic.to(dtype)},
        )
        if return_maps:
            output.extras.update(quality.extras())
        return output
