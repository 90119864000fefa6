"""The ``imagereward`` reward: ImageReward's score of every sampled frame against the prompt, averaged over time."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..base import VideoReward, register_architecture
from ..frame_plan import FramePlan, source_length, take_frames
from ..output import RewardOutput
from ..blocks.blip import BlipSpec
from ..video.sampling import uniform_frame_indices
from .scorer import BlipScorer
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

    def frame_indices(self, num_frames: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Every frame, or ``num_frames`` evenly spread ones (at most the video's length), built on ``device``."""
        count = num_frames if self.config.num_frames is None else min(num_frames, self.config.num_frames)
        return uniform_frame_indices(num_frames, count, device=device)

    def frame_plan(self, num_frames: int) -> FramePlan:
        if self.config.num_frames is None:
            return FramePlan.every_frame_of(num_frames)
        return FramePlan.of(num_frames, self.frame_indices(num_frames))

    def compile_targets(self) -> dict[str, tuple[torch.nn.Module, str]]:
        return self.scorer.compile_targets("scorer.blip")

    def _forward(
        self, videos: torch.Tensor, prompts: list[str], return_frame_scores: bool = False,
        frame_plan: FramePlan | None = None,
    ) -> RewardOutput:
        batch = videos.shape[0]
        # a full video's indices are built where its frames are (no copy); a plan maps host indices to clip positions
        indices = self.frame_indices(source_length(videos, frame_plan), None if frame_plan is not None else videos.device)
        count = indices.numel()
        frames = take_frames(videos, indices, frame_plan).flatten(0, 1)
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
