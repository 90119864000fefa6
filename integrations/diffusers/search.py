"""Inference-time search beyond best-of-N: spend a budget of denoiser calls per prompt where the reward says.

``search(pipe, prompts, reward, strategy=..., budget=...)`` runs one of the strategies of
``search_strategies`` (``best-of-n``, ``early-pruning``, ``resample``, ``noise-search``) on the
search's own loop (``sampler``), scores with any reward (a model, a name or a mixture such as
``"aigc-vqa:1,colorfulness:0.01"``) and writes what best_of_n writes: every finished video, the
results tables, one contact sheet per prompt and a resumable state, split across ``accelerate
launch`` processes by prompt. Every candidate carries its ``Lineage``, from which
``sampler.regenerate`` makes its video again alone, bit for bit.

Seeds: candidate ``j`` of prompt ``i`` starts from ``candidate_seed(seed, i, j)`` (best_of_n's rule);
the fresh noise of particle ``j`` after resampling round ``r`` (1, 2, ...) is drawn from
``candidate_seed(seed, i, j) + r * 2**32``, and the round's systematic offset from the same rule
for ``j`` = the number of particles.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tqdm.auto import tqdm

from reward.base import VideoReward
from reward.mixture import resolve_reward
from reward.scoring.sharding import Processes

from .best_of_n import (
    SEED_RULE,
    BestOfNResult,
    Candidate,
    _contact_sheet_path,
    _label,
    _open_store,
    _rank,
    _settings,
    candidate_seed,
)
from .contact_sheet import SheetRow, save_contact_sheet
from .frames import FrameSelection
from .lineage import Lineage
from .run_store import RunStore
from .sampler import Sampler, chunked, generation_settings, noise_levels, search_adapter
from .search_strategies import SearchStrategy, as_strategy, best_of
from .video_files import read_video

#: Seeds of consecutive resampling rounds of one particle are this far apart.
ROUND_SEED_STRIDE = 2**32
SEARCH_SEED_RULE = f"initial noise: {SEED_RULE}; fresh noise of particle j after resampling round r: that + r * {ROUND_SEED_STRIDE}"


@dataclass
class SearchCandidate(Candidate):
    """A searched video (or a candidate stopped by early pruning) with its lineage.

    A candidate whose reward failed has ``error`` set, the worst possible ``score`` internally
    (``None`` in the tables) and ranks after the finished ones.
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


@dataclass
class SearchResult(BestOfNResult):
    """best_of_n's result plus the strategy, the budget, each prompt's ``spend`` and its ``traces``
    (for ``resample``: every round's step, previews and ancestors)."""

    strategy: SearchStrategy | None = None
    budget: int = 0
    spend: dict[int, Spend] = field(default_factory=dict)
    traces: dict[int, dict[str, Any]] = field(default_factory=dict)


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

    def score_previews(self, clean: list[torch.Tensor], frames: int | None) -> list[float | None]:
        """Rewards of each clean-latent prediction decoded (``frames`` evenly spread frames, None: all;
        None as a reward: the reward failed)."""
        selection = FrameSelection.all() if frames is None else FrameSelection.uniform(frames)
        return [scored.value for scored in self.score(self.sampler.decode(clean, selection))]

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
        comparable = self.worst if preview is None else preview
        if threshold is not None and (comparable < threshold if self.higher_is_better else comparable > threshold):
            stopped = self._record(j, lineage.stopped(step), None, Scored(preview, {}, None), preview_score=preview)
            self._save()
            return stopped
        self._reserve(self.steps - step - 1)
        latents = self.sampler.advance([self.sampler.step(latents, clean, step)], step + 1, self.steps)[0]
        return self.finish([(j, lineage)], [latents], preview_score=preview)[0]

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
        stopped = lineage.stopped_at
        score = scored.value if scored.value is not None else self.worst
        error = None if stopped is not None else scored.error
        file = None
        if self.store is not None:
            file = self.store.add(
                self.prompt_index, j, self.prompt, self.seed(j), video, None if error else score, scored.components,
                pruned_at_step=stopped, preview_score=preview_score, extra={"lineage": lineage.as_dict(), "error": error},
            )
        candidate = SearchCandidate(
            self.prompt, self.prompt_index, j, self.seed(j), score, scored.components, file=file,
            video=video if self.keep_videos else None, pruned_at_step=stopped, preview_score=preview_score,
            lineage=lineage, error=error,
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


def _summary_key(prompt_index: int) -> str:
    return f"{prompt_index}:search"


def _load_prompt(store: RunStore, prompt_index: int, prompt: str, worst: float) -> tuple[list[SearchCandidate], dict] | None:
    """A prompt whose search finished in ``store`` (summary and every file there), else None."""
    summary = store.records.get(_summary_key(prompt_index))
    if summary is None or summary["prompt"] != prompt:
        return None
    candidates = []
    for j in summary["candidates"]:
        record = store.records.get(RunStore.key(prompt_index, j))
        if record is None or store.finished(prompt_index, j, prompt, record["seed"]) is None:
            return None
        candidates.append(candidate_from_record(store.out_dir, prompt_index, j, record, worst))
    return candidates, summary


def _check_arguments(prompts: list[str], budget: int, batch_size: int, top_k: int | None) -> None:
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ValueError("prompts must be one or more non-empty strings")
    if budget < 1 or batch_size < 1:
        raise ValueError(f"budget (denoiser calls per prompt) and batch_size must be >= 1, got {budget} and {batch_size}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")


def _check_searchable(pipe: Any, pipe_kwargs: dict[str, Any]) -> int:
    """Fail before any work when the pipeline, its scheduler or the arguments cannot be searched; returns the steps."""
    adapter = search_adapter(pipe)
    settings = generation_settings(pipe, pipe_kwargs)
    size = {name: int(settings[name]) for name in ("num_frames", "height", "width")}
    adapter.set_timesteps(int(settings["num_inference_steps"]), **size)
    noise_levels(adapter.scheduler)
    return int(settings["num_inference_steps"])


def search(
    pipe: Any,
    prompts: Sequence[str] | str,
    reward: VideoReward | str,
    *,
    strategy: SearchStrategy | str = "resample",
    budget: int,
    seed: int = 0,
    batch_size: int = 1,
    top_k: int | None = None,
    out_dir: str | Path | None = None,
    reward_device: torch.device | str | None = None,
    resume: bool = True,
    progress: bool = True,
    fps: float = 8,
    higher_is_better: bool = True,
    keep_videos: bool | None = None,
    save_tensors: bool = False,
    processes: Processes | None = None,
    **pipe_kwargs: Any,
) -> SearchResult | None:
    """Search each prompt with ``strategy`` (a name with default settings, or a strategy instance) within
    ``budget`` denoiser calls per prompt (a CFG pair counts as one); rank its candidates by ``reward``.

    Arguments shared with ``best_of_n`` mean the same (outputs in ``out_dir``, resume, ``top_k``,
    ``keep_videos``, ``save_tensors``, ``accelerate launch`` via ``processes``). ``batch_size``
    groups denoiser calls, decodes and reward calls; at 1 (default) every video equals the one
    ``regenerate`` makes from its lineage bit for bit. Pipeline arguments: ``sampler.SEARCH_KWARGS``.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    _check_arguments(prompts, budget, batch_size, top_k)
    strategy = as_strategy(strategy)
    steps = _check_searchable(pipe, pipe_kwargs)
    strategy.check(steps, budget)
    model = resolve_reward(reward)
    model = model.to(reward_device) if reward_device is not None else model
    processes = processes or Processes.current(cpu=model.device.type == "cpu")
    if processes.world > 1 and out_dir is None:
        raise ValueError(f"search in {processes.world} processes merges their results on disk: pass out_dir")
    keep_videos = out_dir is None if keep_videos is None else keep_videos
    store = None
    if out_dir is not None:
        settings = _settings(pipe, model, seed, fps, None, pipe_kwargs)
        options = json.loads(json.dumps(dataclasses.asdict(strategy)))
        settings["search"] = {"strategy": strategy.name, "options": options, "budget": budget, "seed_rule": SEARCH_SEED_RULE}
        store = _open_store(Path(out_dir), settings, processes, resume=resume, fps=fps, save_tensors=save_tensors)

    mine = processes.shard(range(len(prompts)))
    worst = -math.inf if higher_is_better else math.inf
    result = SearchResult([], 0, store.out_dir if store else None, strategy=strategy, budget=budget)
    candidates: list[SearchCandidate] = []
    with tqdm(total=budget * len(mine), desc=f"search ({strategy.name})", unit="call",
              disable=not (progress and processes.is_main)) as bar:
        for i in mine:
            loaded = _load_prompt(store, i, prompts[i], worst) if store is not None else None
            if loaded is None:
                run = PromptSearch(
                    Sampler(pipe, prompts[i], pipe_kwargs, batch_size=batch_size), model, prompts[i], i, seed, budget,
                    store=store, higher_is_better=higher_is_better, keep_videos=keep_videos, batch_size=batch_size, bar=bar,
                )
                strategy.run(run)
                result.generated += run.generated
                loaded = run.candidates, run.summary()
                if store is not None:
                    store.put(_summary_key(i), loaded[1])
                    store.save()
            else:
                bar.update(loaded[1]["spend"]["denoiser_calls"])
            candidates += loaded[0]
            result.spend[i], result.traces[i] = Spend(**loaded[1]["spend"]), loaded[1]["trace"]

    result.candidates = _rank(candidates, higher_is_better)
    result.top_k = top_k or max((len(result.for_prompt(i)) for i in mine), default=1)
    if store is None:
        return result
    result.contact_sheets = _write_contact_sheets(result, store.out_dir, prompts, mine)
    if processes.world > 1:
        processes.barrier()
        if not processes.is_main:
            return None
        result = _merged_result(store, processes.world, prompts, result, worst, higher_is_better, top_k)
    _write_tables(result, store, prompts)
    return result


def _merged_result(
    store: RunStore, world: int, prompts: list[str], mine: SearchResult, worst: float, higher_is_better: bool,
    top_k: int | None,
) -> SearchResult:
    """Rank 0, once every process is done: every prompt's candidates, read back from the merged state."""
    store.merge_shards(world)
    result = dataclasses.replace(mine, candidates=[], spend={}, traces={}, contact_sheets=[])
    candidates = []
    for i, prompt in enumerate(prompts):
        loaded = _load_prompt(store, i, prompt, worst)
        if loaded is None:
            raise RuntimeError(
                f"the search of prompt {i} made by another process is not in {store.out_dir}; "
                "out_dir must be a folder every process shares."
            )
        candidates += loaded[0]
        result.spend[i], result.traces[i] = Spend(**loaded[1]["spend"]), loaded[1]["trace"]
        if any(c.finished for c in loaded[0]):
            result.contact_sheets.append(_contact_sheet_path(store.out_dir, i))
    result.candidates = _rank(candidates, higher_is_better)
    result.top_k = top_k or max((len(result.for_prompt(i)) for i in range(len(prompts))), default=1)
    return result


def _write_contact_sheets(result: SearchResult, out_dir: Path, prompts: list[str], prompt_indices: Sequence[int]) -> list[Path]:
    """One contact sheet per prompt with a finished video: those videos, best first."""
    paths = []
    for i in prompt_indices:
        rows = [SheetRow(read_video(c.file), _label(c)) for c in result.for_prompt(i) if c.finished]
        if rows:
            paths.append(save_contact_sheet(_contact_sheet_path(out_dir, i), rows, title=f"prompt {i}: {prompts[i]}"))
    return paths


def _write_tables(result: SearchResult, store: RunStore, prompts: list[str]) -> None:
    rows = [c.row(store.out_dir) for c in result.candidates]
    components = list(dict.fromkeys(name for c in result.candidates for name in c.components))
    header = {
        **store.settings, "prompts": prompts, "top_k": result.top_k,
        "spend": [{"prompt_index": i, **dataclasses.asdict(result.spend[i])} for i in sorted(result.spend)],
        "traces": [{"prompt_index": i, **result.traces[i]} for i in sorted(result.traces)],
    }
    extra = ["candidate_index", "pruned_at_step", "preview_score", "error", "lineage"]
    result.table_json, result.table_csv = store.write_tables(rows, components, header, extra_columns=extra)
