"""Named PCQA presets: ``reward.load("pcqa-convnext-s", pretrained="backbones")`` and friends.

No trained PCQA weights are public. ``pretrained=True`` without ``weights=`` therefore raises;
``pretrained="backbones"`` is a training start (open_clip text towers + timm ImageNet backbone,
random head); ``pretrained=False`` is random; ``weights=`` loads a folder written by ``save_pretrained``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..base import VideoReward
from ..errors import WeightsNotFoundError
from ..registry import register_reward
from .config import PCQAConfig, PCQAEnsembleConfig, TextTowerConfig
from .ensemble import PCQAEnsemble
from .model import PCQAReward

#: The ``pretrained`` value that loads pretrained text towers and backbone under an untrained head.
BACKBONES = "backbones"

CONVNEXT_S = "convnext_small.in12k_ft_in1k"
EFFICIENTVIT_L = "efficientvit_l2.r224_in1k"
EVA02_B = "eva02_base_patch14_448.mim_in22k_ft_in22k_in1k"


def convnext_s_config(**overrides: Any) -> PCQAConfig:
    return PCQAConfig(**{"backbone": CONVNEXT_S, "mixer": "dot", **overrides})


def efficientvit_l_config(**overrides: Any) -> PCQAConfig:
    return PCQAConfig(**{"backbone": EFFICIENTVIT_L, "mixer": "concat", **overrides})


def eva02_b_config(**overrides: Any) -> PCQAConfig:
    """EVA02-B fine-tuned at 448; its position embedding is resampled to the configured resolution."""
    resolution = overrides.get("resolution", 224)
    kwargs = {"img_size": resolution, **overrides.pop("backbone_kwargs", {})}
    return PCQAConfig(**{"backbone": EVA02_B, "mixer": "dot", "backbone_kwargs": kwargs, **overrides})


def ensemble_config(flip_tta: bool = False, **member_overrides: Any) -> PCQAEnsembleConfig:
    """ConvNeXt-S (dot) + EfficientViT-L2 (concat) + EVA02-B (dot), sharing one prompt encoder."""
    members = [factory(**member_overrides) for factory in (convnext_s_config, efficientvit_l_config, eva02_b_config)]
    return PCQAEnsembleConfig(members=members, flip_tta=flip_tta)


def tiny_text_towers() -> list[TextTowerConfig]:
    """Two tiny random towers with the real towers' tokenizers (open_clip BPE, vocabulary 49408)."""
    return [
        TextTowerConfig(
            "ViT-H-14-quickgelu",
            text_cfg={"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
            embed_dim=32,
            quick_gelu=True,
        ),
        TextTowerConfig(
            "EVA02-L-14",
            text_cfg={"context_length": 32, "vocab_size": 49408, "width": 24, "heads": 2, "layers": 1},
            embed_dim=16,
            quick_gelu=False,
        ),
    ]


def tiny_config(**overrides: Any) -> PCQAConfig:
    """Seconds on CPU: tiny text towers, timm's ``test_convnext`` at 64x64, 4 frames, small head."""
    defaults = {
        "text_towers": tiny_text_towers(),
        "backbone": "test_convnext",
        "resolution": 64,
        "num_frames": 4,
        "adapter_dim": 32,
        "head_hidden": 16,
        "prompt_cache_size": 256,
    }
    return PCQAConfig(**{**defaults, **overrides})


NO_PUBLIC_WEIGHTS = (
    "no trained PCQA weights are public. Train one with the PCQA recipe in training_recipes/ and load the "
    "folder it saves (reward.load({name!r}, weights='path/to/folder')), start training from pretrained text "
    "towers and backbone with pretrained='backbones', or build random weights with pretrained=False."
)


def _preset(name: str, make_config: Callable[..., Any], model_cls: type[VideoReward], *, tiny: bool = False):
    def build(weights: Any = None, pretrained: bool | str = True, **overrides: Any) -> VideoReward:
        if weights is not None:
            if overrides:
                raise ValueError(f"overrides {sorted(overrides)} cannot change a saved model; edit its config.json instead")
            return VideoReward.from_pretrained(weights)
        if tiny and pretrained is not False:
            raise WeightsNotFoundError(f"{name!r} is a random test model with no weights: use pretrained=False.")
        if pretrained is True:
            raise WeightsNotFoundError(f"{name}: " + NO_PUBLIC_WEIGHTS.format(name=name))
        text_weights = overrides.pop("text_weights", None)
        backbone_weights = overrides.pop("backbone_weights", None)
        config = make_config(**overrides)
        if pretrained == BACKBONES:
            return model_cls.from_backbones(config, text_weights=text_weights, backbone_weights=backbone_weights)
        if pretrained is False:
            return model_cls(config)
        raise ValueError(f"pretrained must be True, False or {BACKBONES!r} for {name!r}, got {pretrained!r}.")

    return build


_SOURCES = (
    "none public (train with training_recipes); pretrained='backbones': open_clip ViT-H-14-quickgelu/dfn5b + "
    "EVA02-L-14/merged2b_s4b_b131k text towers and timm ImageNet {backbone} from the hub"
)
_PCQA = ("pcqa", "prompt-conditioned")

#: name -> (config factory, model class, description, components, weight sources, tags)
PRESETS: dict[str, tuple] = {
    "pcqa-convnext-s": (
        convnext_s_config, PCQAReward, "PCQA with a ConvNeXt-S frame backbone and dot mixer (prompt-conditioned quality)",
        ("quality",), _SOURCES.format(backbone=CONVNEXT_S), _PCQA,
    ),
    "pcqa-efficientvit-l": (
        efficientvit_l_config, PCQAReward, "PCQA with an EfficientViT-L2 frame backbone and concat mixer",
        ("quality",), _SOURCES.format(backbone=EFFICIENTVIT_L), _PCQA,
    ),
    "pcqa-eva02-b": (
        eva02_b_config, PCQAReward, "PCQA with an EVA02-B frame backbone (224 input) and dot mixer",
        ("quality",), _SOURCES.format(backbone=EVA02_B), _PCQA,
    ),
    "pcqa-ensemble": (
        ensemble_config, PCQAEnsemble,
        "z-normalised average of PCQA ConvNeXt-S, EfficientViT-L2 and EVA02-B; optional flip TTA",
        ("member_0", "member_1", "member_2"), _SOURCES.format(backbone=f"{CONVNEXT_S}, {EFFICIENTVIT_L}, {EVA02_B}"),
        (*_PCQA, "ensemble"),
    ),
    "pcqa-tiny": (
        tiny_config, PCQAReward, "tiny random PCQA (tiny text towers, timm test_convnext) for tests; seconds on CPU",
        ("quality",), "none: random (pretrained=False)", (*_PCQA, "tiny"),
    ),
}

for _name, (_factory, _model_cls, _description, _components, _sources, _tags) in PRESETS.items():
    register_reward(_name, description=_description, components=_components, weight_sources=_sources, tags=_tags)(
        _preset(_name, _factory, _model_cls, tiny=_name == "pcqa-tiny")
    )
