"""The built-in presets' names, the module registering each, and its metadata, so that listing and
describing rewards imports no model code (open_clip, timm, transformers: seconds). Kept equal to
what the modules register by tests/test_core.py::test_builtin_preset_table_matches_the_registrations;
the preset modules register through ``reward.registry.register_builtin_reward``, which reads this table."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinPreset:
    """Where a built-in preset is registered, and the metadata its ``register_reward`` call gives."""

    module: str
    description: str
    components: tuple[str, ...]
    weight_sources: str
    higher_is_better: bool = True
    score_range: tuple[float, float] | None = None
    tags: tuple[str, ...] = ()
    #: what ``save_pretrained`` writes as ``architecture``: ``reward.load(name, weights=folder)`` refuses others
    architecture: str | None = None


_AIGC_VQA = "reward.aigcvqa.presets"
_DOVER = "reward.dover.presets"
_IMAGEREWARD = "reward.imagereward.presets"
_PCQA = "reward.pcqa.presets"
_SIMPLE = "reward.simple"
_PCQA_TAGS = ("pcqa", "prompt-conditioned")
_PCQA_SOURCES = (
    "none public (train with training_recipes); pretrained='backbones': open_clip ViT-H-14-quickgelu/dfn5b + "
    "EVA02-L-14/merged2b_s4b_b131k text towers and timm ImageNet {} from the hub"
)

BUILTIN_PRESETS: dict[str, BuiltinPreset] = {
    "aigc-vqa": BuiltinPreset(
        _AIGC_VQA,
        "AIGC-VQA: technical (Swin-3D) + aesthetic (ConvNeXt-3D) + alignment (BLIP + ST-Adapter), summed",
        ("technical", "aesthetic", "alignment"),
        "No AIGC-VQA weights are published: aigc-vqa starts zero-shot from DOVER.pth (technical and aesthetic "
        "branches; hub teowu/DOVER/DOVER.pth) and ImageReward.pt (alignment branch; hub THUDM/ImageReward, with its "
        "med_config.json) with the ST-Adapter at identity. Pass weights={'dover': '/path/DOVER.pth', 'imagereward': "
        "'/path/ImageReward.pt'} (paths, hub ids or URLs), a folder written by save_pretrained() or `aigc-reward "
        "convert`, or pretrained=False for random weights.",
        tags=("video-quality", "alignment", "aigc"),
        architecture="aigc-vqa",
    ),
    "aigc-vqa-tiny": BuiltinPreset(
        _AIGC_VQA,
        "AIGC-VQA with tiny widths and 4-frame views (random weights, in-memory tokenizer; for tests)",
        ("technical", "aesthetic", "alignment"),
        "none published: random weights (pretrained=False), or a native folder of this size",
        tags=("video-quality", "alignment", "aigc", "tiny"),
        architecture="aigc-vqa",
    ),
    "brightness": BuiltinPreset(
        _SIMPLE,
        "mean luma in [0, 1] (no weights; a hackable sanity target)",
        ("brightness",),
        "none: closed form",
        score_range=(0.0, 1.0),
        tags=("simple",),
        architecture="statistic",
    ),
    "colorfulness": BuiltinPreset(
        _SIMPLE,
        "Hasler-Suesstrunk colorfulness (no weights; a hackable sanity target)",
        ("colorfulness",),
        "none: closed form",
        score_range=(0.0, 200.0),
        tags=("simple",),
        architecture="statistic",
    ),
    "dover": BuiltinPreset(
        _DOVER,
        "DOVER overall video quality (technical Swin-3D + aesthetic ConvNeXt-3D, score-level fusion)",
        ("technical", "aesthetic"),
        "DOVER.pth is published by the DOVER authors on the Hugging Face hub "
        "(https://huggingface.co/teowu/DOVER/resolve/main/DOVER.pth) and on GitHub "
        "(https://github.com/VQAssessment/DOVER/releases/download/v0.1.0/DOVER.pth). Download it and pass "
        "weights='/path/to/DOVER.pth' (a hub id or URL works too), or pass pretrained=False for random weights.",
        score_range=(0.0, 1.0),
        tags=("video-quality", "no-prompt"),
        architecture="dover",
    ),
    "dover-tiny": BuiltinPreset(
        _DOVER,
        "DOVER with reduced widths and 16-frame views (random weights; for tests and quick checks)",
        ("technical", "aesthetic"),
        "none published: random weights (pretrained=False) or a DOVER.pth-layout file of the tiny size",
        score_range=(0.0, 1.0),
        tags=("video-quality", "no-prompt", "tiny"),
        architecture="dover",
    ),
    "imagereward": BuiltinPreset(
        _IMAGEREWARD,
        "ImageReward (BLIP ViT-L + BERT) per frame, averaged over frames",
        ("imagereward",),
        "hub THUDM/ImageReward (ImageReward.pt + med_config.json); tokenizer: hub bert-base-uncased",
        tags=("alignment", "image"),
        architecture="imagereward",
    ),
    "imagereward-tiny": BuiltinPreset(
        _IMAGEREWARD,
        "tiny random ImageReward for tests (character vocabulary built in memory)",
        ("imagereward",),
        "none: random weights (pretrained=False)",
        tags=("alignment", "image", "tiny"),
        architecture="imagereward",
    ),
    "pcqa-convnext-s": BuiltinPreset(
        _PCQA,
        "PCQA with a ConvNeXt-S frame backbone and dot mixer (prompt-conditioned quality)",
        ("quality",),
        _PCQA_SOURCES.format("convnext_small.in12k_ft_in1k"),
        tags=_PCQA_TAGS,
        architecture="pcqa",
    ),
    "pcqa-efficientvit-l": BuiltinPreset(
        _PCQA,
        "PCQA with an EfficientViT-L2 frame backbone and concat mixer",
        ("quality",),
        _PCQA_SOURCES.format("efficientvit_l2.r224_in1k"),
        tags=_PCQA_TAGS,
        architecture="pcqa",
    ),
    "pcqa-ensemble": BuiltinPreset(
        _PCQA,
        "z-normalised average of PCQA ConvNeXt-S, EfficientViT-L2 and EVA02-B; optional flip TTA",
        ("member_0", "member_1", "member_2"),
        _PCQA_SOURCES.format(
            "convnext_small.in12k_ft_in1k, efficientvit_l2.r224_in1k, eva02_base_patch14_448.mim_in22k_ft_in22k_in1k"
        ),
        tags=(*_PCQA_TAGS, "ensemble"),
        architecture="pcqa-ensemble",
    ),
    "pcqa-eva02-b": BuiltinPreset(
        _PCQA,
        "PCQA with an EVA02-B frame backbone (224 input) and dot mixer",
        ("quality",),
        _PCQA_SOURCES.format("eva02_base_patch14_448.mim_in22k_ft_in22k_in1k"),
        tags=_PCQA_TAGS,
        architecture="pcqa",
    ),
    "pcqa-tiny": BuiltinPreset(
        _PCQA,
        "tiny random PCQA (tiny text towers, timm test_convnext) for tests; seconds on CPU",
        ("quality",),
        "none: random (pretrained=False)",
        tags=(*_PCQA_TAGS, "tiny"),
        architecture="pcqa",
    ),
}
