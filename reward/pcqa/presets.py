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
from ..registry import register_builtin_reward
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


#: name -> (config factory, model class); descriptions and weight sources are in reward.builtin_presets.
PRESETS: dict[str, tuple[Callable[..., Any], type[VideoReward]]] = {
    "pcqa-convnext-s": (convnext_s_config, PCQAReward),
    "pcqa-efficientvit-l": (efficientvit_l_config, PCQAReward),
    "pcqa-eva02-b": (eva02_b_config, PCQAReward),
    "pcqa-ensemble": (ensemble_config, PCQAEnsemble),
    "pcqa-tiny": (tiny_config, PCQAReward),
}

for _name, (_factory, _model_cls) in PRESETS.items():
    register_builtin_reward(_name)(_preset(_name, _factory, _model_cls, tiny=_name == "pcqa-tiny"))
