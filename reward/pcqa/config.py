"""PCQA configs: plain dataclasses that round-trip through ``config.json`` (nested dicts become dataclasses)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: Ways to combine the 1024-d vision and prompt adapters before the MLP head.
MIXERS = ("dot", "concat")


@dataclass
class TextTowerConfig:
    """One frozen open_clip text tower, built from ``model_name``'s bundled config without its vision tower.

    ``text_cfg`` / ``embed_dim`` / ``quick_gelu`` default to open_clip's config for ``model_name``
    (filled in by ``resolve``, so a saved model does not depend on open_clip's bundled files);
    ``pretrained`` is an open_clip pretrained tag of ``model_name`` or a checkpoint path, hub id or
    URL, read only when pretrained text towers are asked for. The tokenizer is open_clip's for
    ``model_name`` at ``text_cfg["context_length"]``.
    """

    model_name: str
    pretrained: str | None = None
    text_cfg: dict[str, Any] | None = None
    embed_dim: int | None = None
    quick_gelu: bool | None = None

    def resolve(self) -> "TextTowerConfig":
        """A copy with the architecture fields taken from open_clip's bundled config where unset."""
        if self.text_cfg is not None and self.embed_dim is not None and self.quick_gelu is not None:
            return self
        import open_clip

        bundled = open_clip.get_model_config(self.model_name)
        if bundled is None:
            raise ValueError(
                f"open_clip has no model config {self.model_name!r}; pick one of open_clip.list_models() "
                "or give text_cfg, embed_dim and quick_gelu explicitly."
            )
        return dataclasses.replace(
            self,
            text_cfg=dict(bundled["text_cfg"]) if self.text_cfg is None else self.text_cfg,
            embed_dim=int(bundled["embed_dim"]) if self.embed_dim is None else self.embed_dim,
            quick_gelu=bool(bundled.get("quick_gelu", False)) if self.quick_gelu is None else self.quick_gelu,
        )


def default_text_towers() -> list[TextTowerConfig]:
    """The paper's hybrid encoder: DFN-5B ViT-H-14 (quickgelu) and EVA02-L-14 text towers."""
    return [
        TextTowerConfig("ViT-H-14-quickgelu", pretrained="dfn5b"),
        TextTowerConfig("EVA02-L-14", pretrained="merged2b_s4b_b131k"),
    ]


@dataclass
class PCQAConfig:
    """One PCQA scorer: frozen hybrid prompt encoder + timm backbone per frame + temporal convs + head.

    ``pixel_mean`` / ``pixel_std`` default to the backbone's timm ``pretrained_cfg`` and are
    written into the config when the model is built. ``num_frames`` is an upper bound: longer
    videos are sampled uniformly, shorter ones use every frame.
    """

    text_towers: list[TextTowerConfig] = field(default_factory=default_text_towers)
    backbone: str = "convnext_small"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    resolution: int = 224
    num_frames: int = 16
    mixer: str = "dot"
    adapter_dim: int = 1024
    head_hidden: int = 512
    pixel_mean: tuple[float, float, float] | None = None
    pixel_std: tuple[float, float, float] | None = None
    prompt_cache_size: int = 4096

    def __post_init__(self) -> None:
        self.text_towers = [t if isinstance(t, TextTowerConfig) else TextTowerConfig(**t) for t in self.text_towers]
        if not self.text_towers:
            raise ValueError("PCQA needs at least one text tower in text_towers.")
        if self.mixer not in MIXERS:
            raise ValueError(f"unknown mixer {self.mixer!r}; choose one of {MIXERS}.")
        for name in ("resolution", "num_frames", "adapter_dim", "head_hidden", "prompt_cache_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}.")
        for name in ("pixel_mean", "pixel_std"):
            value = getattr(self, name)
            if value is not None:
                if len(value) != 3:
                    raise ValueError(f"{name} needs one value per RGB channel, got {value!r}.")
                setattr(self, name, tuple(float(v) for v in value))


@dataclass
class PCQAEnsembleConfig:
    """Members (full ``PCQAConfig`` each, same text towers) averaged after z-normalisation; optional flip TTA."""

    members: list[PCQAConfig] = field(default_factory=list)
    flip_tta: bool = False

    def __post_init__(self) -> None:
        self.members = [m if isinstance(m, PCQAConfig) else PCQAConfig(**m) for m in self.members]
        if not self.members:
            raise ValueError("a PCQA ensemble needs at least one member config.")
        first = [dataclasses.asdict(t.resolve()) for t in self.members[0].text_towers]
        for index, member in enumerate(self.members[1:], start=1):
            if [dataclasses.asdict(t.resolve()) for t in member.text_towers] != first:
                raise ValueError(
                    f"ensemble member {index} uses other text towers than member 0; members share one "
                    "frozen prompt encoder, so give every member the same text_towers."
                )
