"""PCQA ensembles: members z-normalised with stored prediction statistics, averaged; optional flip TTA."""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base import VideoReward, register_architecture
from ..output import RewardOutput
from ..precision import full_precision
from ..validation import check_prompts, check_videos
from .config import PCQAEnsembleConfig
from .model import PCQAReward, PCQAScorer, build_prompt_encoder, build_scorer, resolved_config
from .text import HybridPromptEncoder


@register_architecture
class PCQAEnsemble(VideoReward):
    """Mean over members of ``(prediction_m - mean_m) / std_m``; one frozen prompt encoder shared by all.

    ``mean_m``/``std_m`` are buffers (saved with the weights) set by ``compute_ensemble_statistics``;
    until then they are 0 and 1 and a warning says so. With ``flip_tta`` every member scores the
    video and its horizontal mirror and uses the mean of the two predictions.
    """

    architecture = "pcqa-ensemble"
    config_class = PCQAEnsembleConfig
    requires_prompts = True

    def __init__(
        self,
        config: PCQAEnsembleConfig,
        *,
        prompt_encoder: HybridPromptEncoder | None = None,
        scorers: Sequence[PCQAScorer] | None = None,
    ):
        first = config.members[0]
        prompt_encoder = prompt_encoder or HybridPromptEncoder(first.text_towers, first.prompt_cache_size)
        scorers = list(scorers) if scorers is not None else [build_scorer(m, prompt_encoder.embed_dim) for m in config.members]
        if len(scorers) != len(config.members):
            raise ValueError(f"got {len(scorers)} scorers for {len(config.members)} member configs.")
        members = [resolved_config(m, prompt_encoder, s) for m, s in zip(config.members, scorers)]
        super().__init__(dataclasses.replace(config, members=members))
        self.prompt_encoder = prompt_encoder
        self.members = nn.ModuleList(scorers)
        self.register_buffer("pred_mean", torch.zeros(len(scorers)))
        self.register_buffer("pred_std", torch.ones(len(scorers)))
        self.register_buffer("stats_count", torch.zeros((), dtype=torch.long))
        self.statistics_checked = False  # forward reads stats_count once (not per call: on a GPU that read waits)
        self.register_load_state_dict_post_hook(_recheck_statistics)
        self.component_names = tuple(f"member_{i}" for i in range(len(scorers)))

    @classmethod
    def from_members(cls, members: Sequence[PCQAReward], *, flip_tta: bool = False) -> "PCQAEnsemble":
        """Ensemble trained ``PCQAReward`` models; their scorers are shared (not copied), the first encoder is kept."""
        if not members:
            raise ValueError("from_members needs at least one PCQAReward.")
        config = PCQAEnsembleConfig(members=[m.config for m in members], flip_tta=flip_tta)
        reference = members[0].prompt_encoder.state_dict()
        for index, member in enumerate(members[1:], start=1):
            state = member.prompt_encoder.state_dict()
            if state.keys() != reference.keys() or not all(torch.equal(state[k], reference[k]) for k in reference):
                raise ValueError(
                    f"member {index} has other text-tower weights than member 0; an ensemble shares one frozen "
                    "prompt encoder. Build members with the same pretrained towers (or the same seed / "
                    "prompt_encoder=members[0].prompt_encoder for random ones)."
                )
        ensemble = cls(config, prompt_encoder=members[0].prompt_encoder, scorers=[m.scorer for m in members])
        return ensemble.to(members[0].device)

    @classmethod
    def from_backbones(
        cls,
        config: PCQAEnsembleConfig,
        *,
        text_weights: Sequence[str] | None = None,
        backbone_weights: Sequence[str | Path | None] | None = None,
    ) -> "PCQAEnsemble":
        """Every member starts from its ImageNet backbone; the shared text towers from open_clip (hub at run time)."""
        first = config.members[0]
        encoder = build_prompt_encoder(first.text_towers, first.prompt_cache_size, pretrained=True, text_weights=text_weights)
        files = list(backbone_weights) if backbone_weights is not None else [None] * len(config.members)
        scorers = [
            build_scorer(member, encoder.embed_dim, pretrained=True, backbone_weights=file)
            for member, file in zip(config.members, files, strict=True)
        ]
        return cls(config, prompt_encoder=encoder, scorers=scorers)

    def compile_targets(self) -> dict[str, tuple[nn.Module, str]]:
        """Every member's timm frame backbone (the shared text towers are cached per prompt)."""
        return {f"members.{i}.vision.model": (member.vision.model, "forward_features") for i, member in enumerate(self.members)}

    def member_predictions(self, videos: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """Raw predictions ``[M, B]`` of every member on validated inputs (flip-averaged when ``flip_tta``)."""
        embeddings = self.prompt_encoder(prompts, dtype=self.compute_dtype)
        batch = videos.shape[0]
        if self.config.flip_tta:
            videos = torch.cat([videos, videos.flip(-1)])
            embeddings = torch.cat([embeddings, embeddings])
        raw = torch.stack([member(videos, embeddings, self.compute_dtype) for member in self.members])
        if self.config.flip_tta:
            raw = raw.view(len(self.members), 2, batch).mean(dim=1)
        return raw

    def _forward(self, videos: torch.Tensor, prompts: list[str] | None) -> RewardOutput:
        if not self.statistics_checked:
            self.statistics_checked = True
            if int(self.stats_count) == 0:
                warnings.warn(
                    "this PCQA ensemble has no prediction statistics (mean 0, std 1 are used); call "
                    "reward.pcqa.compute_ensemble_statistics(model, batches) on the training set first.",
                    stacklevel=3,
                )
        raw = self.member_predictions(videos, prompts)
        with full_precision(raw.device):
            normalised = (raw - self.pred_mean[:, None]) / self.pred_std[:, None]
            score = normalised.mean(dim=0)
        return RewardOutput(score=score, components=dict(zip(self.component_names, normalised.unbind(0))))


def _recheck_statistics(ensemble: PCQAEnsemble, incompatible_keys: object) -> None:
    ensemble.statistics_checked = False


@torch.no_grad()
def compute_ensemble_statistics(
    ensemble: PCQAEnsemble, batches: Iterable[tuple[torch.Tensor, Sequence[str] | str]]
) -> dict[str, Any]:
    """Store each member's prediction mean and (population) std over ``batches`` of ``(videos, prompts)``.

    Predictions are taken in eval mode with the ensemble's own flip TTA setting, so the statistics
    match what ``forward`` normalises. Returns ``{"mean": [...], "std": [...], "count": N}``.
    """
    was_training = ensemble.training
    ensemble.eval()
    try:
        chunks = []
        for videos, prompts in batches:
            videos = check_videos(videos)
            prompts = check_prompts(prompts, videos.shape[0])
            chunks.append(ensemble.member_predictions(videos.to(ensemble.device), prompts))
    finally:
        ensemble.train(was_training)
    if not chunks or sum(chunk.shape[1] for chunk in chunks) < 2:
        raise ValueError("ensemble statistics need at least 2 videos; pass the training set as (videos, prompts) batches.")
    raw = torch.cat(chunks, dim=1).double()
    mean, std = raw.mean(dim=1), raw.std(dim=1, unbiased=False)
    constant = (std <= 0).nonzero().flatten().tolist()
    if constant:
        raise ValueError(f"ensemble members {constant} predict one constant value over the data; are they trained?")
    ensemble.pred_mean.copy_(mean)
    ensemble.pred_std.copy_(std)
    ensemble.stats_count.fill_(raw.shape[1])
    return {"mean": mean.tolist(), "std": std.tolist(), "count": raw.shape[1]}
