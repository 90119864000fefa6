"""Early pruning for best-of-N: stop a candidate part-way when a one-step preview of its final video
scores worse than the candidates of its prompt that are already doing better.

At step ``EarlyPruning.step`` a ``callback_on_step_end`` runs the denoiser once more on the current
latents, turns the prediction into clean latents (``adapter.predict_clean``), decodes a few frames
and scores them with the reward. A candidate whose preview is below the ``keep``-th best preview of
its prompt so far is interrupted: its remaining steps are skipped. The first ``keep`` candidates of
a prompt always finish. Cost: one extra denoiser call per candidate; saving: the skipped steps.
"""
from __future__ import annotations

import inspect
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from reward.base import VideoReward

from .adapters import adapter_for
from .frames import FrameSelection


@dataclass(frozen=True)
class EarlyPruning:
    """Preview after ``step`` denoising steps; keep the ``keep`` best previews per prompt running;
    the preview decodes ``frames`` evenly spread frames."""

    step: int
    keep: int = 1
    frames: int = 4

    def __post_init__(self) -> None:
        if self.step < 1 or self.keep < 1 or self.frames < 1:
            raise ValueError(f"EarlyPruning needs step >= 1, keep >= 1 and frames >= 1, got {self}")


@dataclass
class PruningReport:
    """What pruning saved, in denoiser calls (a CFG pair counts as one step)."""

    checked: int
    pruned: int
    steps_without_pruning: int
    steps_run: int
    preview_calls: int

    @property
    def saved_fraction(self) -> float:
        """Share of the denoiser calls of an unpruned run that were not needed (previews included)."""
        return 1 - (self.steps_run + self.preview_calls) / max(self.steps_without_pruning, 1)


class PreviewCallback:
    """``callback_on_step_end`` for one candidate: previews at the pruning step, may interrupt."""

    def __init__(self, pruner: "Pruner", prompt: str, threshold: float | None):
        self.pruner, self.prompt, self.threshold = pruner, prompt, threshold
        self.preview_score: float | None = None
        self.preview_components: dict[str, float] = {}
        self.pruned_at: int | None = None

    def __call__(self, pipe: Any, index: int, t: torch.Tensor, tensors: dict[str, torch.Tensor]) -> dict:
        steps_done = index + 1
        timesteps = pipe.scheduler.timesteps
        if steps_done != self.pruner.rule.step or steps_done >= len(timesteps):
            return {}
        row = self.pruner.preview(tensors["latents"], timesteps[steps_done], self.prompt)
        self.preview_score = row.pop("score")
        self.preview_components = row
        if self.threshold is not None and self.pruner.worse(self.preview_score, self.threshold):
            pipe._interrupt = True
            self.pruned_at = steps_done
        return {}


def keep_threshold(previews: list[float], keep: int, higher_is_better: bool) -> float | None:
    """The ``keep``-th best preview so far: a later candidate previewing worse stops (None: too few yet)."""
    seen = sorted(previews, reverse=higher_is_better)
    return seen[keep - 1] if len(seen) >= keep else None


def _call_default(pipe: Any, name: str, pipe_kwargs: dict[str, Any]) -> Any:
    """A pipeline argument as the call will see it: given, or the ``__call__`` default."""
    if name in pipe_kwargs:
        return pipe_kwargs[name]
    parameter = inspect.signature(pipe.__call__).parameters.get(name)
    return None if parameter is None else parameter.default


class Pruner:
    """Per-run pruning state: preview scores seen so far per prompt, and the saving."""

    def __init__(self, rule: EarlyPruning, pipe: Any, model: VideoReward, pipe_kwargs: dict[str, Any], higher_is_better: bool):
        if "callback_on_step_end" not in inspect.signature(pipe.__call__).parameters:
            raise ValueError(f"{type(pipe).__name__} has no callback_on_step_end, which early pruning needs")
        self.rule, self.model, self.higher_is_better = rule, model, higher_is_better
        self.adapter = adapter_for(pipe)
        self.size = {name: _call_default(pipe, name, pipe_kwargs) for name in ("num_frames", "height", "width")}
        self.steps = int(_call_default(pipe, "num_inference_steps", pipe_kwargs))
        if rule.step >= self.steps:
            raise ValueError(f"EarlyPruning.step={rule.step} must be below num_inference_steps={self.steps}")
        self.guidance = float(_call_default(pipe, "guidance_scale", pipe_kwargs))
        self.encode_kwargs = {
            "negative_prompts": pipe_kwargs.get("negative_prompt"),
            "max_sequence_length": pipe_kwargs.get("max_sequence_length"),
            **({"prompt_template": pipe_kwargs["prompt_template"]} if "prompt_template" in pipe_kwargs else {}),
        }
        self.previews: dict[int, list[float]] = defaultdict(list)

    def worse(self, score: float, threshold: float) -> bool:
        return score < threshold if self.higher_is_better else score > threshold

    def callback(self, prompt_index: int, prompt: str) -> PreviewCallback:
        """A fresh callback for the next candidate of ``prompt_index``."""
        return PreviewCallback(self, prompt, keep_threshold(self.previews[prompt_index], self.rule.keep, self.higher_is_better))

    def remember(self, prompt_index: int, preview_score: float | None) -> None:
        if preview_score is not None:
            self.previews[prompt_index].append(preview_score)

    @torch.no_grad()
    def preview(self, pipeline_latents: torch.Tensor, t: torch.Tensor, prompt: str) -> dict[str, float]:
        """Reward of the clean video one denoiser call predicts from the current latents."""
        adapter = self.adapter
        latents = adapter.from_pipeline_latents(pipeline_latents, **self.size).float()
        conditioning = adapter.encode_prompt(
            [prompt], do_classifier_free_guidance=self.guidance > 1, **self.encode_kwargs
        )
        prediction = adapter.denoiser_forward(latents, t, conditioning, self.guidance)
        clean = adapter.predict_clean(prediction, t, latents)
        videos = adapter.decode(clean, FrameSelection.uniform(self.rule.frames))
        return self.model.score(videos, [prompt]).to_rows()[0]

    def report(self, pruned_at: list[int | None]) -> PruningReport:
        """The saving over candidates that went through the pruning check in this run."""
        steps_run = sum(self.steps if step is None else step for step in pruned_at)
        return PruningReport(
            checked=len(pruned_at), pruned=sum(step is not None for step in pruned_at),
            steps_without_pruning=self.steps * len(pruned_at), steps_run=steps_run, preview_calls=len(pruned_at),
        )
