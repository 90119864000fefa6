"""diffusers integration: family adapters (differentiable decode, denoising-loop pieces), best-of-N, tiny pipelines."""
from .adapters import PromptEmbeddings, UnsupportedPipelineError, VideoPipelineAdapter, adapter_for, supported_pipelines
from .frames import FrameSelection
from .outputs import to_videos
from .tiny import TINY_FAMILIES, TINY_REWARD, build_tiny_pipeline, tiny_generation_kwargs

__all__ = [
    "FrameSelection",
    "PromptEmbeddings",
    "TINY_FAMILIES",
    "TINY_REWARD",
    "UnsupportedPipelineError",
    "VideoPipelineAdapter",
    "adapter_for",
    "build_tiny_pipeline",
    "supported_pipelines",
    "tiny_generation_kwargs",
    "to_videos",
]
