"""One prompt's search as the strategies drive it: its sampler, the reward (a failure fails one candidate),
the budget, the seeds, and the records of its candidates (with resume from an earlier run's records)."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tqdm.auto import tqdm

from reward.base import VideoReward

from .best_of_n import Candidate, candidate_seed
from .frames import FrameSelection
from .lineage import Lineage
from .run_store import RunStore
from .sampler import Sampler, chunked
from .search_strategies import best_of

#: Seeds of consecutive resampling rounds of one particle are this far apart.
ROUND_SEED_STRIDE = 2**32


@dataclass
class SearchCandidate(Candidate):
    """A searched video (or a candidate stopped by early pruning) with its lineage.

    A candidate whose reward (or, if it was stopped, its preview's) failed has ``error`` set, the
    worst possible ``score`` internally (``None`` in the tables) and ranks after the finished ones.
    """

    lineage: Lineage = field(default_factory=lambda: Lineage(0))
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.pruned_at_step is None and self.error is None

    def row(self, out_dir: Path | None) -> dict[str, Any]:
        row = super().row(out_dir)
        row.update(score=None if self.error else self.score, lineage=self.lineage.as_dict(), error=self.error or "")
        return row


@dataclass
class Spend:
    """What one prompt's search cost: denoiser calls (a CFG pair is one) and videos scored by the reward."""

    denoiser_calls: int = 0
    reward_calls: int = 0


class Scored(NamedTuple):
    value: float | None
    components: dict[str, float]
    error: str | None


class PromptSearch:
    """One prompt's search, as strategies see it: sampler, reward, budget, seeds, records (and resume)."""

    def __init__(
        self, sampler: Sampler, model: VideoReward, prompt: str, prompt_index: int, base_seed: int, budget: int, *,
        store: RunStore | None, higher_is_better: bool, keep_videos: bool, batch_size: int, bar: tqdm,
    ):
        self.sampler, self.model, self.prompt, self.prompt_index = sampler, model, prompt, prompt_index
        self.base_seed, self.budget, self.store, self.higher_is_better = base_seed, budget, store, higher_is_better
        self.keep_videos, self.batch_size, self.bar = keep_videos, batch_size, bar
        self.steps = sampler.steps
        self.replayed_calls = 0  # denoiser calls of candidates taken from an earlier run's records
        self.reward_calls = 0  # theirs included
        self.generated = 0
        self.candidates: list[SearchCandidate] = []
        self.trace: dict[str, Any] = {}

    # -- budget and seeds ------------------------------------------------------------------------
    @property
    def spent(self) -> int:
        return self.sampler.denoiser_calls + self.replayed_calls

    @property
    def remaining(self) -> int:
        return self.budget - self.spent

    def _reserve(self, calls: int) -> None:
        if calls > self.remaining:
            raise RuntimeError(f"a strategy asked for {calls} denoiser calls with {self.remaining} of {self.budget} left")
        self.bar.update(calls)

    def seed(self, candidate_index: int) -> int:
        return candidate_seed(self.base_seed, self.prompt_index, candidate_index)

    def round_seed(self, particle: int, round_index: int) -> int:
        return self.seed(particle) + round_index * ROUND_SEED_STRIDE

    @property
    def worst(self) -> float:
        return -math.inf if self.higher_is_better else math.inf

    def best(self, candidates: list[SearchCandidate]) -> SearchCandidate:
        return best_of(candidates, self.higher_is_better)

    # -- denoising and scoring -------------------------------------------------------------------
    def predict_clean(self, particles: list[torch.Tensor], index: int) -> list[torch.Tensor]:
        self._reserve(len(particles))
        return self.sampler.predict_clean(particles, index)

    def score(self, videos: Sequence[torch.Tensor]) -> list[Scored]:
        """Reward of each video; one that makes the reward fail (or gives a non-finite score) fails alone."""
        self.reward_calls += len(videos)
        return [scored for group in chunked(videos, self.batch_size) for scored in self._score_group(group)]

    def _score_group(self, group: list[torch.Tensor]) -> list[Scored]:
        try:
            rows = self.model.score(torch.stack(group).to(self.model.device), [self.prompt] * len(group)).to_rows()
        except Exception as error:  # noqa: BLE001  (any reward failure fails its candidate only)
            if len(group) > 1:
                return [scored for video in group for scored in self._score_group([video])]
            return [Scored(None, {}, f"the reward failed: {type(error).__name__}: {error}")]
        scored = []
        for row in rows:
            value = row.pop("score")
            scored.append(Scored(value, row, None) if math.isfinite(value) else Scored(None, {}, "the reward gave a non-finite score"))
        return scored

    def score_previews(self, clean: list[torch.Tensor], frames: int | None) -> list[Scored]:
        """Rewards of each clean-latent prediction decoded (``frames`` evenly spread frames, None: all)."""
        selection = FrameSelection.all() if frames is None else FrameSelection.uniform(frames)
        return self.score(self.sampler.decode(clean, selection))

    # -- candidates --------------------------------------------------------------------------------
    def complete(self, items: list[tuple[int, Lineage]]) -> list[SearchCandidate]:
        """Finish a video from each ``(candidate_index, lineage)`` (noise moves only): all steps, decode, score."""
        done = {j: self._recorded(j, lineage) for j, lineage in items}
        for j in done:
            if done[j] is not None:
                self._replay(done[j], reward_calls=1)
        todo = [(j, lineage) for j, lineage in items if done[j] is None]
        for group in chunked(todo, self.batch_size):
            self._reserve(len(group) * self.steps)
            particles = self.sampler.advance([self.sampler.initial(lineage) for _, lineage in group], 0, self.steps)
            done.update({c.candidate_index: c for c in self.finish(group, particles)})
        return [done[j] for j, _ in items]

    def complete_unless_worse(
        self, j: int, lineage: Lineage, step: int, frames: int, threshold: float | None
    ) -> SearchCandidate:
        """Early pruning: preview after ``step`` steps; stop there when worse than ``threshold``, else finish."""
        recorded = self._recorded(j, lineage)
        if recorded is not None:
            self._replay(recorded, reward_calls=1 if recorded.pruned_at_step is not None else 2)
            return recorded
        self._reserve(step + 1)
        latents = self.sampler.advance([self.sampler.initial(lineage)], 0, step)[0]
        clean = self.sampler.predict_clean([latents], step)[0]
        preview = self.score_previews([clean], frames)[0]
        comparable = self.worst if preview.value is None else preview.value
        if threshold is not None and (comparable < threshold if self.higher_is_better else comparable > threshold):
            stopped = self._record(j, lineage.stopped(step), None, preview, preview_score=preview.value)
            self._save()
            return stopped
        self._reserve(self.steps - step - 1)
        latents = self.sampler.advance([self.sampler.step(latents, clean, step)], step + 1, self.steps)[0]
        return self.finish([(j, lineage)], [latents], preview_score=preview.value)[0]

    def finish(
        self, items: list[tuple[int, Lineage]], latents: list[torch.Tensor], preview_score: float | None = None
    ) -> list[SearchCandidate]:
        """Decode, score and record finished particles."""
        videos = self.sampler.decode(latents)
        made = [
            self._record(j, lineage, video, scored, preview_score=preview_score)
            for (j, lineage), video, scored in zip(items, videos, self.score(videos))
        ]
        self._save()
        return made

    def _save(self) -> None:
        if self.store is not None:
            self.store.save()

    def _record(
        self, j: int, lineage: Lineage, video: torch.Tensor | None, scored: Scored, *, preview_score: float | None
    ) -> SearchCandidate:
        self.generated += 1
        stopped, error = lineage.stopped_at, scored.error
        file = None
        if self.store is not None:
            file = self.store.add(
                self.prompt_index, j, self.prompt, self.seed(j), video, scored.value, scored.components,
                pruned_at_step=stopped, preview_score=preview_score, extra={"lineage": lineage.as_dict(), "error": error},
            )
        candidate = SearchCandidate(
            self.prompt, self.prompt_index, j, self.seed(j), self.worst if scored.value is None else scored.value,
            scored.components, file=file, video=video if self.keep_videos else None, pruned_at_step=stopped,
            preview_score=preview_score, lineage=lineage, error=error,
        )
        self.candidates.append(candidate)
        return candidate

    def _recorded(self, j: int, lineage: Lineage) -> SearchCandidate | None:
        """This candidate from an earlier run of the same search, if it is recorded with its files."""
        if self.store is None:
            return None
        record = self.store.finished(self.prompt_index, j, self.prompt, self.seed(j))
        if record is None or "lineage" not in record:
            return None
        candidate = candidate_from_record(self.store.out_dir, self.prompt_index, j, record, self.worst)
        stopped = candidate.lineage.stopped_at
        return candidate if candidate.lineage == (lineage if stopped is None else lineage.stopped(stopped)) else None

    def _replay(self, candidate: SearchCandidate, reward_calls: int) -> None:
        calls = self.steps if candidate.pruned_at_step is None else candidate.pruned_at_step + 1
        self._reserve(calls)
        self.replayed_calls += calls
        self.reward_calls += reward_calls
        self.candidates.append(candidate)

    def summary(self) -> dict[str, Any]:
        """The per-prompt record that marks this prompt's search as done."""
        spend = Spend(self.spent, self.reward_calls)
        return {
            "prompt": self.prompt, "candidates": sorted(c.candidate_index for c in self.candidates),
            "spend": dataclasses.asdict(spend), "trace": self.trace,
        }


def candidate_from_record(out_dir: Path, prompt_index: int, j: int, record: dict[str, Any], worst: float) -> SearchCandidate:
    score = record["score"]
    return SearchCandidate(
        record["prompt"], prompt_index, j, record["seed"], worst if score is None else score, record["components"],
        file=out_dir / record["file"] if record["file"] else None, pruned_at_step=record.get("pruned_at_step"),
        preview_score=record.get("preview_score"), lineage=Lineage.from_dict(record["lineage"]), error=record.get("error"),
    )
