"""AIGC-VQA (Lu et al., CVPR-W 2024) as a differentiable reward: technical + aesthetic + alignment, added.

``score = q_t + q_a + s_a``: ``q_t`` and ``q_a`` are DOVER's raw branch scores (the means of the
technical and aesthetic head maps), ``s_a`` the alignment branch's score on ImageReward's scale.
No AIGC-VQA weights are published: the public starting point is the zero-shot model built from
DOVER.pth + ImageReward.pt with the ST-Adapter at identity (``reward.aigcvqa.zero_shot``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..base import VideoReward, register_architecture
from ..output import RewardOutput
from ..precision import full_precision
from ..video.sampling import uniform_frame_indices
from .alignment import ALIGNMENT_TINY, AlignmentBranch, AlignmentConfig
from ..blocks.blip import BlipSpec
from ..blocks.convnext3d import ConvNeXt3DConfig
from ..dover.model import DoverConfig, QualityBranches, ViewSampling, dover_tiny_config
from ..blocks.swin3d import Swin3DConfig

#: Submodules of each branch (what a stage-wise training recipe selects).
BRANCHES: dict[str, tuple[str, ...]] = {
    "technical": ("technical_backbone", "technical_head"),
    "aesthetic": ("aesthetic_backbone", "aesthetic_head"),
    "alignment": ("alignment",),
}


def paper_quality_config() -> DoverConfig:
    """DOVER's public branch sizes with the paper's 16-frame views: technical one clip of 16 consecutive
    frames (7x7 fragments of 32x32, offsets shared by the whole clip), aesthetic 16 frames (one per
    segment) resized to 224x224."""
    return DoverConfig(
        technical_clip_len=16,
        technical_num_clips=1,
        technical_frame_interval=1,
        technical_aligned=16,
        aesthetic_clip_len=16,
        aesthetic_t_frag=16,
        aesthetic_frame_interval=2,
    )


@dataclass
class AigcVqaConfig:
    """Sizes and views of the three branches; the defaults are the paper's (DOVER Swin-T and
    ConvNeXt-T on 16-frame views, ImageReward's BLIP on 16 frames, ST-Adapter width 384)."""

    quality: DoverConfig = field(default_factory=paper_quality_config)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)

    def __post_init__(self) -> None:
        if isinstance(self.quality, Mapping):
            self.quality = DoverConfig(**self.quality)
        if isinstance(self.alignment, Mapping):
            self.alignment = AlignmentConfig(**self.alignment)


def _small_config() -> AigcVqaConfig:
    blip = BlipSpec(
        vision_width=64, vision_depth=2, vision_heads=4, vision_mlp=256,
        text_width=64, text_depth=2, text_heads=4, text_intermediate=128,
    )
    return AigcVqaConfig(quality=dover_tiny_config(), alignment=AlignmentConfig(blip=blip, adapter_channels=16))


def _tiny_config() -> AigcVqaConfig:
    """Random tiny branches on small views, for tests and CPU training runs: 4-frame clips, technical 4x4
    fragments of 8 pixels (a 32-pixel view), aesthetic frames at 32x32, BLIP on 32x32 frames in 8-pixel
    patches; no dropout or drop path in the backbones (small data, few epochs: with BLIP's dropout the
    random alignment branch does not learn to match colour words in a CPU test). A forward and backward
    of 8 clips takes well under 0.1 s on one CPU thread."""
    quality = DoverConfig(
        technical=Swin3DConfig(embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 4), drop_path_rate=0.0),
        aesthetic=ConvNeXt3DConfig(dims=(8, 16, 32, 64), depths=(1, 1, 1, 1)),
        head_hidden_channels=16,
        head_dropout=0.0,
        technical_clip_len=4,
        technical_num_clips=1,
        technical_frame_interval=1,
        technical_aligned=4,
        technical_fragments=4,
        technical_fragment_size=8,
        aesthetic_clip_len=4,
        aesthetic_t_frag=4,
        aesthetic_frame_interval=1,
        aesthetic_size=32,
    )
    blip = dataclasses.replace(ALIGNMENT_TINY.blip, image_size=32, patch_size=8, hidden_dropout=0.0, attention_dropout=0.0)
    alignment = dataclasses.replace(ALIGNMENT_TINY, blip=blip)
    return AigcVqaConfig(quality=quality, alignment=alignment)


#: Named sizes: ``paper`` (the published model), ``small`` (the reduced reference models of the
#: parity data: DOVER widths 24-192 with 16-frame views, BLIP ViT 64x2 / BERT 64x2), ``tiny``
#: (random weights on small views, for tests and CPU training runs).
SIZES: dict[str, Callable[[], AigcVqaConfig]] = {"paper": AigcVqaConfig, "small": _small_config, "tiny": _tiny_config}


def merge_config(base: Any, changes: Mapping[str, Any]) -> Any:
    """A copy of dataclass ``base`` with ``changes``; a dict given for a dataclass field changes only its keys."""
    known = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown {type(base).__name__} fields {unknown}; known fields are {sorted(known)}")
    merged = {}
    for name, value in changes.items():
        current = getattr(base, name)
        if isinstance(value, Mapping) and dataclasses.is_dataclass(current):
            value = merge_config(current, value)
        merged[name] = value
    return dataclasses.replace(base, **merged)


def aigc_vqa_config(sizes: str = "paper", **changes: Any) -> AigcVqaConfig:
    """The config of named ``sizes`` with ``changes``, e.g. ``quality={"technical_num_clips": 2}`` or
    ``alignment={"num_frames": 8, "tokenizer": "/path/vocab.txt"}`` (dicts change only their keys)."""
    if sizes not in SIZES:
        raise ValueError(f"unknown AIGC-VQA sizes {sizes!r}; choose one of {sorted(SIZES)}")
    return merge_config(SIZES[sizes](), changes)


@register_architecture
class AigcVqaReward(QualityBranches, VideoReward):
    """Technical (Swin-3D on fragments), aesthetic (ConvNeXt-3D on resized frames) and alignment
    (BLIP + ST-Adapter) scores of each video against its prompt, and their sum.

    Submodules: ``technical_backbone``, ``technical_head``, ``aesthetic_backbone``,
    ``aesthetic_head`` (DOVER.pth's names) and ``alignment`` (``blip``, ``adapter``, ``mlp``);
    :meth:`branch_parameters` selects them for stage-wise training.
    """

    architecture = "aigc-vqa"
    config_class = AigcVqaConfig
    requires_prompts = True
    component_names = ("technical", "aesthetic", "alignment")

    def __init__(self, config: AigcVqaConfig):
        super().__init__(config)
        self.build_quality_branches(config.quality)
        self.alignment = AlignmentBranch(config.alignment)

    def branch_parameters(self, *branches: str) -> list[nn.Parameter]:
        """Parameters of the named branches (``technical``, ``aesthetic``, ``alignment``) or submodules
        (e.g. ``alignment.adapter``), each once, in definition order."""
        if not branches:
            raise ValueError(f"name at least one branch: {sorted(BRANCHES)} or a submodule such as 'alignment.adapter'")
        seen: dict[int, nn.Parameter] = {}
        for module in self._branch_modules(branches):
            for parameter in module.parameters():
                seen.setdefault(id(parameter), parameter)
        return list(seen.values())

    def _branch_modules(self, branches: Iterable[str]) -> list[nn.Module]:
        modules = []
        for branch in branches:
            for name in BRANCHES.get(branch, (branch,)):
                try:
                    modules.append(self.get_submodule(name))
                except AttributeError:
                    raise ValueError(
                        f"unknown branch {branch!r}; choose from {sorted(BRANCHES)} or a submodule name "
                        f"such as 'alignment.adapter' or 'technical_backbone.layers.3'"
                    ) from None
        return modules

    def compile_targets(self) -> dict[str, tuple[nn.Module, str]]:
        return {**self.quality_compile_targets(), **self.alignment.compile_targets("alignment.blip")}

    def _forward(
        self, videos: torch.Tensor, prompts: list[str], *, return_maps: bool = False, **view_sampling: Any
    ) -> RewardOutput:
        """Quality views and branches as in ``dover`` (``view_sampling``: the fields of :class:`ViewSampling`),
        alignment on ``alignment.num_frames`` evenly spread frames; backbones under autocast, heads and sum
        in fp32."""
        quality = self.quality_scores(videos, self.config.quality, ViewSampling(**view_sampling))
        input_ids, attention_mask = self.alignment.tokenize(prompts, videos.device)
        alignment = self.alignment(videos, input_ids, attention_mask, compute_dtype=self.compute_dtype)
        with full_precision(videos.device):
            components = {"technical": quality.technical_raw, "aesthetic": quality.aesthetic_raw, "alignment": alignment}
            score = components["technical"] + components["aesthetic"] + components["alignment"]
        output = RewardOutput(score=score, components=components)
        if return_maps:
            output.extras.update(quality.extras())
            output.extras["alignment_frame_indices"] = uniform_frame_indices(videos.shape[1], self.config.alignment.num_frames)
        return output
