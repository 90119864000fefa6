"""PCQA: a frozen hybrid CLIP prompt encoder + timm frame backbone scoring prompt-conditioned quality.

    >>> import reward
    >>> model = reward.load("pcqa-tiny", pretrained=False)
    >>> model(videos, prompts).score          # videos [B, T, 3, H, W] in [0, 1]; T = 1 for images
"""
from .config import MIXERS, PCQAConfig, PCQAEnsembleConfig, TextTowerConfig
from .ensemble import PCQAEnsemble, compute_ensemble_statistics
from .model import PCQAReward, PCQAScorer, build_prompt_encoder, build_scorer
from .text import HybridPromptEncoder, PromptEmbeddingCache, load_text_weights

__all__ = [
    "MIXERS",
    "PCQAConfig",
    "PCQAEnsembleConfig",
    "TextTowerConfig",
    "PCQAReward",
    "PCQAScorer",
    "PCQAEnsemble",
    "HybridPromptEncoder",
    "PromptEmbeddingCache",
    "build_prompt_encoder",
    "build_scorer",
    "compute_ensemble_statistics",
    "load_text_weights",
]
