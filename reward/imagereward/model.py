"""The ``imagereward`` reward: ImageReward's score of every sampled frame against the prompt, averaged over time."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..base import VideoReward, register_architecture
from ..output import RewardOutput
from ..blocks.blip import BlipSpec
from .scorer import BlipScorer, select_frames
from .tokenizer import HUB_TOKENIZER, MAX_LENGTH


@dataclass
class ImageRewardConfig:
    """``num_frames=None`` scores every frame; a number scores that many evenly spread frames (at most T)."""

    blip: BlipSpec = field(default_factory=BlipSpec)
    num_frames: int | None = None
    tokenizer: str = HUB_TOKENIZER
    max_length: int = MAX_LENGTH

    def __post_init__(self) -> None:
        self.blip = BlipSpec.coerce(self.blip)
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError(f"num_frames must be None (every frame) or at least 1, got {self.num_frames}")


@register_architecture
class ImageRewardVideo(VideoReward):
    """ImageReward per frame, averaged: on a single 224x224 frame it is the public ImageReward score.

    ``return_frame_scores=True`` adds the per-frame scores [B, F] to ``extras["frame_scores"]``.
    """

    architecture = "imagereward"
    config_class = ImageRewardConfig
    requires_prompts = True
    component_names = ("imagereward",)

    def __init__(self, config: ImageRewardConfig):
        super().__init__(config)
        self.scorer = BlipScorer(config.blip, config.tokenizer, config.max_length)

    def compile_targets(self) -> dict[str, tuple[torch.nn.Module, str]]:
        return self.scorer.compile_targets("scorer.blip")

    def _forward(self, videos: torch.Tensor, prompts: list[str], return_frame_scores: bool = False) -> RewardOutput:
        batch, length = videos.shape[:2]
        count = length if self.config.num_frames is None else min(length, self.config.num_frames)
        frames = select_frames(videos, count).flatten(0, 1)
        tokens = self.scorer.encode_frames(frames, self.compute_dtype)
        input_ids, attention_mask = self.scorer.tokenize(prompts, videos.device)
        frame_scores = self.scorer.score_tokens(
            input_ids.repeat_interleave(count, dim=0),
            attention_mask.repeat_interleave(count, dim=0),
            tokens,
            self.compute_dtype,
        ).view(batch, count)
        score = frame_scores.mean(dim=1)
        extras = {"frame_scores": frame_scores} if return_frame_scores else {}
        return RewardOutput(score=score, components={"imagereward": score}, extras=extras)
