"""Family adapters for diffusers text-to-video pipelines; ``adapter_for(pipe)`` picks the right one."""
from __future__ import annotations

from typing import Any

from .animatediff import AnimateDiffAdapter
from .base import (
    CAUSAL,
    FULL,
    PER_FRAME,
    PromptEmbeddings,
    UnsupportedPipelineError,
    VideoPipelineAdapter,
    flow_noise_levels,
)
from .cogvideox import CogVideoXAdapter
from .hunyuan_video import HunyuanVideoAdapter
from .ltx import LTXAdapter
from .mochi import MochiAdapter
from .text_to_video_sd import TextToVideoSDAdapter
from .wan import WanAdapter

#: Every adapter class, in the order the README lists them.
ADAPTERS: tuple[type[VideoPipelineAdapter], ...] = (
    TextToVideoSDAdapter,
    AnimateDiffAdapter,
    WanAdapter,
    CogVideoXAdapter,
    LTXAdapter,
    MochiAdapter,
    HunyuanVideoAdapter,
)


def supported_pipelines() -> list[str]:
    """Pipeline class names ``adapter_for`` accepts (subclasses of these work too)."""
    return [name for adapter in ADAPTERS for name in adapter.pipeline_class_names]


def adapter_for(pipe: Any) -> VideoPipelineAdapter:
    """The family adapter for ``pipe``, matched on its class or any base class by name."""
    by_name = {name: adapter for adapter in ADAPTERS for name in adapter.pipeline_class_names}
    for cls in type(pipe).__mro__:
        if cls.__name__ in by_name:
            return by_name[cls.__name__](pipe)
    raise UnsupportedPipelineError(
        f"no adapter for {type(pipe).__name__}; supported pipelines: {', '.join(supported_pipelines())} "
        "(image-to-video and video-to-video variants are not supported yet)"
    )


__all__ = [
    "ADAPTERS",
    "CAUSAL",
    "FULL",
    "PER_FRAME",
    "PromptEmbeddings",
    "UnsupportedPipelineError",
    "VideoPipelineAdapter",
    "adapter_for",
    "flow_noise_levels",
    "supported_pipelines",
    "AnimateDiffAdapter",
    "CogVideoXAdapter",
    "HunyuanVideoAdapter",
    "LTXAdapter",
    "MochiAdapter",
    "TextToVideoSDAdapter",
    "WanAdapter",
]
