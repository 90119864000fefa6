"""Inference-time search beyond best-of-N: spend a budget of denoiser calls per prompt where the reward says.

``search(pipe, prompts, reward, strategy=..., budget=...)`` runs one of the strategies of
``search_strategies`` (``best-of-n``, ``early-pruning``, ``resample``, ``noise-search``), each driving a
``prompt_search.PromptSearch`` per prompt on the search's own loop (``sampler``), scores with any
reward (a model, a name or a mixture such as ``"aigc-vqa:1,colorfulness:0.01"``) and writes what
best_of_n writes: every finished video, the
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
from typing import Any

import torch
from tqdm.auto import tqdm

from reward.base import VideoReward
from reward.gallery import write_gallery
from reward.mixture import resolve_reward
from reward.scoring.sharding import Processes

from .best_of_n import GALLERY_NAME, SEED_RULE, BestOfNResult, _contact_sheet_path, _label, _open_store, _rank, _settings
from .contact_sheet import SheetRow, save_contact_sheet
from .prompt_search import ROUND_SEED_STRIDE, PromptSearch, SearchCandidate, Spend, candidate_from_record
from .run_store import RunStore
from .sampler import Sampler, generation_settings, noise_levels, search_adapter
from .search_strategies import SearchStrategy, as_strategy
from .video_files import read_video

SEARCH_SEED_RULE = f"initial noise: {SEED_RULE}; fresh noise of particle j after resampling round r: that + r * {ROUND_SEED_STRIDE}"


@dataclass
class SearchResult(BestOfNResult):
    """best_of_n's result plus the strategy, the budget, each prompt's ``spend`` and its ``traces``
    (for ``resample``: every round's step, previews and ancestors)."""

    strategy: SearchStrategy | None = None
    budget: int = 0
    spend: dict[int, Spend] = field(default_factory=dict)
    traces: dict[int, dict[str, Any]] = field(default_factory=dict)


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
    _write_tables(result, store, prompts, higher_is_better)
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


def _write_tables(result: SearchResult, store: RunStore, prompts: list[str], higher_is_better: bool) -> None:
    """``results.json`` / ``results.csv`` and the results page (best-of-N's, plus spend, traces and lineage)."""
    rows = [c.row(store.out_dir) for c in result.candidates]
    components = list(dict.fromkeys(name for c in result.candidates for name in c.components))
    header = {
        **store.settings, "prompts": prompts, "top_k": result.top_k,
        "spend": [{"prompt_index": i, **dataclasses.asdict(result.spend[i])} for i in sorted(result.spend)],
        "traces": [{"prompt_index": i, **result.traces[i]} for i in sorted(result.traces)],
    }
    extra = ["candidate_index", "pruned_at_step", "preview_score", "error", "lineage"]
    result.table_json, result.table_csv = store.write_tables(rows, components, header, extra_columns=extra)
    settings = {key: value for key, value in header.items() if key not in ("prompts", "traces")}
    title = f"{result.strategy.name if result.strategy else 'search'} search: {store.out_dir.resolve().name}"
    result.gallery = write_gallery(
        rows, store.out_dir / GALLERY_NAME, settings=settings, title=title, higher_is_better=higher_is_better
    )[0]
