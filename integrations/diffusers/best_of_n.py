"""Best-of-N: generate ``n`` candidates per prompt with a diffusers pipeline, score each batch with a
reward as it arrives, rank per prompt, and save videos, tables and contact sheets (resumable).

Candidate ``j`` of prompt ``i`` is drawn from a CPU ``torch.Generator`` seeded with
``candidate_seed(seed, i, j) = seed + 100000 * i + j``, one generator per sample, so it can be
regenerated alone: ``pipe(prompt, generator=torch.Generator().manual_seed(s), **same_kwargs)``.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import reward as reward_lib
from reward.base import VideoReward
from reward.gallery import write_gallery
from reward.scoring.sharding import Processes
from reward.validation import check_prompts

from .contact_sheet import SheetRow, save_contact_sheet
from .outputs import to_videos
from .pruning import EarlyPruning, Pruner, PruningReport
from .run_store import RunStore, prepare_state, shard_state_path
from .video_files import read_video

#: Seeds of consecutive prompts are this far apart, so ``n`` must stay below it.
SEED_STRIDE = 100_000
SEED_RULE = f"seed = base_seed + {SEED_STRIDE} * prompt_index + candidate_index"
#: ``pipe_kwargs`` best_of_n sets itself.
RESERVED_KWARGS = ("prompt", "generator", "num_videos_per_prompt", "latents", "callback_on_step_end")
#: The results page written into the output folder.
GALLERY_NAME = "index.html"


def candidate_seed(base_seed: int, prompt_index: int, candidate_index: int) -> int:
    """The seed of candidate ``candidate_index`` of prompt ``prompt_index`` (see ``SEED_RULE``)."""
    if not 0 <= candidate_index < SEED_STRIDE:
        raise ValueError(f"candidate_index must be in [0, {SEED_STRIDE}), got {candidate_index}")
    return base_seed + SEED_STRIDE * prompt_index + candidate_index


@dataclass
class Candidate:
    """One generated video with its reward; ``rank`` 1 is the best for its prompt.

    A candidate stopped by early pruning has ``pruned_at_step`` set, no video, and its preview
    reward as ``score``; it ranks after every finished candidate of its prompt.
    """

    prompt: str
    prompt_index: int
    candidate_index: int
    seed: int
    score: float
    components: dict[str, float]
    rank: int = 0
    file: Path | None = None
    video: torch.Tensor | None = field(default=None, repr=False)
    pruned_at_step: int | None = None
    preview_score: float | None = None

    @property
    def finished(self) -> bool:
        return self.pruned_at_step is None

    def row(self, out_dir: Path | None) -> dict[str, Any]:
        """The results-table row (``file`` relative to the output folder)."""
        file = str(self.file.relative_to(out_dir)) if self.file is not None and out_dir is not None else ""
        return {
            "prompt": self.prompt, "prompt_index": self.prompt_index, "candidate_index": self.candidate_index,
            "seed": self.seed, "rank": self.rank, "score": self.score, "components": dict(self.components), "file": file,
            "pruned_at_step": "" if self.pruned_at_step is None else self.pruned_at_step,
            "preview_score": "" if self.preview_score is None else self.preview_score,
        }


@dataclass
class BestOfNResult:
    """Every candidate, grouped by prompt (in prompt order) and best first within a prompt."""

    candidates: list[Candidate]
    top_k: int
    out_dir: Path | None = None
    table_json: Path | None = None
    table_csv: Path | None = None
    contact_sheets: list[Path] = field(default_factory=list)
    gallery: Path | None = None
    generated: int = 0
    pruning: PruningReport | None = None

    def for_prompt(self, prompt_index: int) -> list[Candidate]:
        return [c for c in self.candidates if c.prompt_index == prompt_index]

    @property
    def top(self) -> list[Candidate]:
        """The ``top_k`` best finished candidates of every prompt."""
        return [c for c in self.candidates if c.rank <= self.top_k and c.finished]

    @property
    def best(self) -> list[Candidate]:
        """The best finished candidate of every prompt."""
        return [c for c in self.candidates if c.rank == 1 and c.finished]


def _load_reward(reward: VideoReward | str, device: torch.device | str | None) -> VideoReward:
    model = reward_lib.load(reward) if isinstance(reward, str) else reward
    return model.to(device) if device is not None else model


def _describe_reward(model: VideoReward) -> dict[str, Any]:
    config = model.config_dict() if hasattr(model, "config_dict") else {}
    return {"class": type(model).__name__, "architecture": getattr(model, "architecture", ""), "config": config}


def _settings(
    pipe: Any, model: VideoReward, base_seed: int, fps: float, prune: EarlyPruning | None, pipe_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """What must not change between a run and its resumption (JSON-comparable)."""
    return {
        "prune": dataclasses.asdict(prune) if prune is not None else None,
        "pipeline": type(pipe).__name__,
        "pipe_kwargs": json.loads(json.dumps(pipe_kwargs, default=repr, sort_keys=True)),
        "reward": json.loads(json.dumps(_describe_reward(model), default=repr)),
        "base_seed": base_seed,
        "seed_rule": SEED_RULE,
        "fps": fps,
    }


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_arguments(
    prompts: list[str], n: int, batch_size: int, top_k: int | None, prune: EarlyPruning | None, pipe_kwargs: dict
) -> None:
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be one or more strings ('' generates unconditionally)")
    if not 1 <= n < SEED_STRIDE:
        raise ValueError(f"n must be in [1, {SEED_STRIDE}), got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if top_k is not None and not 1 <= top_k <= n:
        raise ValueError(f"top_k must be in [1, n={n}], got {top_k}")
    if prune is not None and batch_size != 1:
        raise ValueError("early pruning stops one pipeline call per candidate: use batch_size=1 with prune=")
    reserved = sorted(set(pipe_kwargs) & set(RESERVED_KWARGS))
    if reserved:
        raise ValueError(f"best_of_n sets {reserved} itself (one seeded generator per candidate); pass seed= instead")
    if pipe_kwargs.get("output_type", "pt") not in ("pt", "np", "pil"):
        raise ValueError("best_of_n needs decoded videos: output_type must be 'pt', 'np' or 'pil'")


def best_of_n(
    pipe: Any,
    prompts: Sequence[str] | str,
    reward: VideoReward | str,
    *,
    n: int = 4,
    batch_size: int = 1,
    seed: int = 0,
    top_k: int | None = None,
    out_dir: str | Path | None = None,
    reward_device: torch.device | str | None = None,
    resume: bool = True,
    progress: bool = True,
    fps: float = 8,
    higher_is_better: bool = True,
    keep_videos: bool | None = None,
    save_tensors: bool = False,
    prune: EarlyPruning | None = None,
    processes: Processes | None = None,
    **pipe_kwargs: Any,
) -> BestOfNResult | None:
    """Generate ``n`` candidates per prompt, score them with ``reward`` (an instance or a registered
    name), and rank them per prompt.

    ``batch_size`` candidates go through the pipeline at once (prompts may mix within a batch);
    each batch is scored on ``reward_device`` (default: where the reward is) as soon as it is
    generated. With ``out_dir`` every candidate is saved as ``videos/*.mp4``, with
    ``results.json`` / ``results.csv``, one ``contact_sheet_pNNN.png`` per prompt and the results page
    ``index.html`` (``reward.gallery.write_gallery``); ``resume``
    skips candidates already finished there. ``top_k`` (default ``n``) sets ``result.top``.
    ``keep_videos`` (default: only without ``out_dir``) keeps each video tensor on its candidate.
    ``prune`` (an ``EarlyPruning``, needs ``batch_size=1``) stops hopeless candidates part-way;
    ``result.pruning`` reports the saving. Extra keyword arguments go to the pipeline
    (``num_inference_steps``, ``height``, ...).
    Table scores are those of the decoded float videos; the mp4 files are H.264 (yuv420p), so
    re-scoring a file gives a slightly different number. ``save_tensors`` also writes each exact
    float32 video next to its mp4 (``.safetensors``, key ``"video"``, [T, 3, H, W]; large).

    Under ``accelerate launch`` (``processes``, default: this launch) the prompts are split
    between the processes by index, so seeds and file names stay those of a one-process run.
    Every process saves its videos and contact sheets into the shared ``out_dir`` and records its
    candidates in its own state shard; rank 0 waits for all, merges, writes the tables and
    returns the result of every prompt (without video tensors); the other ranks return None.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    _check_arguments(prompts, n, batch_size, top_k, prune, pipe_kwargs)
    pipe_kwargs.setdefault("output_type", "pt")
    model = _load_reward(reward, reward_device)
    if model.requires_prompts:
        check_prompts(prompts, len(prompts))  # before generating anything
    processes = processes or Processes.current(cpu=model.device.type == "cpu")
    if processes.world > 1 and out_dir is None:
        raise ValueError(f"best_of_n in {processes.world} processes merges their results on disk: pass out_dir")
    keep_videos = out_dir is None if keep_videos is None else keep_videos
    out_path = Path(out_dir) if out_dir is not None else None
    store = None
    if out_path is not None:
        settings = _settings(pipe, model, seed, fps, prune, pipe_kwargs)
        store = _open_store(out_path, settings, processes, resume=resume, fps=fps, save_tensors=save_tensors)
    pruner = Pruner(prune, pipe, model, pipe_kwargs, higher_is_better) if prune is not None else None

    mine = processes.shard(range(len(prompts)))
    candidates, todo = _split_finished(store, prompts, mine, n, seed)
    if pruner is not None:
        for candidate in candidates:
            pruner.remember(candidate.prompt_index, candidate.preview_score)

    pick_best = max if higher_is_better else min
    made: list[Candidate] = []
    restore_bar = _quiet_pipeline_progress(pipe)
    try:
        with tqdm(total=len(todo), desc="best-of-N", unit="video", disable=not (progress and processes.is_main)) as bar:
            for chunk in _chunks(todo, batch_size):
                made.extend(_generate_and_score(pipe, model, prompts, chunk, store, keep_videos, pruner, pipe_kwargs))
                if store is not None:
                    store.save()
                bar.update(len(chunk))
                bar.set_postfix(best=f"{pick_best(c.score for c in candidates + made if c.finished):.4g}")
    finally:
        restore_bar()

    result = BestOfNResult(_rank(candidates + made, higher_is_better), top_k or n, out_path, generated=len(todo))
    if pruner is not None:
        result.pruning = pruner.report([c.pruned_at_step for c in made])
    if store is None:
        return result
    result.contact_sheets = _write_contact_sheets(result, store.out_dir, prompts, mine)
    if processes.world > 1:
        processes.barrier()
        if not processes.is_main:
            return None
        result = _merged_result(store, processes.world, prompts, n, seed, top_k or n, pruner, higher_is_better)
    _write_tables(result, store, prompts, n, prune is not None, higher_is_better)
    return result


def _open_store(
    out_dir: Path, settings: dict[str, Any], processes: Processes, *, resume: bool, fps: float, save_tensors: bool
) -> RunStore:
    """Rank 0 prepares ``state.json`` (folding an interrupted run's shards) before any process opens it."""
    if processes.is_main:
        prepare_state(out_dir, settings, resume=resume)
    processes.barrier()
    shard = shard_state_path(out_dir, processes.rank, processes.world) if processes.world > 1 else None
    return RunStore(out_dir, settings, fps=fps, save_tensors=save_tensors, shard=shard)


def _split_finished(
    store: RunStore | None, prompts: list[str], prompt_indices: Sequence[int], n: int, base_seed: int
) -> tuple[list[Candidate], list[tuple[int, int, int]]]:
    """The candidates of ``prompt_indices`` finished in ``store``, and ``(prompt, candidate, seed)`` of the others."""
    finished: list[Candidate] = []
    todo: list[tuple[int, int, int]] = []
    for i in prompt_indices:
        for j in range(n):
            s = candidate_seed(base_seed, i, j)
            record = store.finished(i, j, prompts[i], s) if store is not None else None
            if record is None:
                todo.append((i, j, s))
                continue
            finished.append(Candidate(
                prompts[i], i, j, s, record["score"], record["components"],
                file=store.out_dir / record["file"] if record["file"] else None,
                pruned_at_step=record.get("pruned_at_step"), preview_score=record.get("preview_score"),
            ))
    return finished, todo


def _merged_result(
    store: RunStore, world: int, prompts: list[str], n: int, base_seed: int, top_k: int, pruner: Pruner | None,
    higher_is_better: bool,
) -> BestOfNResult:
    """Rank 0, once every process is done: all candidates, read back from the merged state."""
    added = store.merge_shards(world)
    candidates, missing = _split_finished(store, prompts, range(len(prompts)), n, base_seed)
    if missing:
        raise RuntimeError(
            f"{len(missing)} candidates made by other processes are not in {store.out_dir} (first: prompt "
            f"{missing[0][0]}, candidate {missing[0][1]}); out_dir must be a folder every process shares."
        )
    result = BestOfNResult(_rank(candidates, higher_is_better), top_k, store.out_dir, generated=len(added))
    result.contact_sheets = [_contact_sheet_path(store.out_dir, i) for i in range(len(prompts))]
    if pruner is not None:
        result.pruning = pruner.report([record["pruned_at_step"] for record in added.values()])
    return result


def _generate_and_score(
    pipe: Any, model: VideoReward, prompts: list[str], chunk: list[tuple[int, int, int]],
    store: RunStore | None, keep_videos: bool, pruner: Pruner | None, pipe_kwargs: dict[str, Any],
) -> list[Candidate]:
    """Run one pipeline batch, score it at once, save and record each candidate."""
    texts = [prompts[i] for i, _, _ in chunk]
    generators = [torch.Generator().manual_seed(s) for _, _, s in chunk]
    call_kwargs = dict(pipe_kwargs)
    preview = None
    if pruner is not None:
        preview = pruner.callback(chunk[0][0], texts[0])
        call_kwargs.update(callback_on_step_end=preview, callback_on_step_end_tensor_inputs=["latents"])
    videos = to_videos(pipe(prompt=texts, generator=generators, **call_kwargs))
    if preview is not None:
        pruner.remember(chunk[0][0], preview.preview_score)
        if preview.pruned_at is not None:
            (i, j, s), components = chunk[0], preview.preview_components
            if store is not None:
                store.add(i, j, texts[0], s, None, preview.preview_score, components,
                          pruned_at_step=preview.pruned_at, preview_score=preview.preview_score)
            return [Candidate(texts[0], i, j, s, preview.preview_score, components, pruned_at_step=preview.pruned_at,
                              preview_score=preview.preview_score)]
    preview_score = preview.preview_score if preview is not None else None
    scores = model.score(videos, texts)
    made = []
    for (i, j, s), video, row in zip(chunk, videos, scores.to_rows()):
        score = row.pop("score")
        file = store.add(i, j, prompts[i], s, video, score, row, preview_score=preview_score) if store is not None else None
        made.append(Candidate(prompts[i], i, j, s, score, row, file=file, video=video if keep_videos else None,
                              preview_score=preview_score))
    return made


def _rank(candidates: list[Candidate], higher_is_better: bool) -> list[Candidate]:
    """Sort by prompt, finished before pruned, then best first (ties: lower candidate index), and number the ranks."""
    sign = -1.0 if higher_is_better else 1.0
    ordered = sorted(candidates, key=lambda c: (c.prompt_index, not c.finished, sign * c.score, c.candidate_index))
    previous_prompt, rank = None, 0
    for candidate in ordered:
        rank = rank + 1 if candidate.prompt_index == previous_prompt else 1
        candidate.rank, previous_prompt = rank, candidate.prompt_index
    return ordered


def _label(candidate: Candidate) -> list[str]:
    lines = [f"#{candidate.rank}  seed {candidate.seed}", f"score {candidate.score:.4g}"]
    return lines + [f"{name} {value:.4g}" for name, value in candidate.components.items()]


def _write_tables(
    result: BestOfNResult, store: RunStore, prompts: list[str], n: int, pruning: bool, higher_is_better: bool
) -> None:
    """``results.json`` / ``results.csv``, and the results page from the same rows and settings."""
    rows = [c.row(store.out_dir) for c in result.candidates]
    components = list(dict.fromkeys(name for c in result.candidates for name in c.components))
    header = {**store.settings, "prompts": prompts, "n": n, "top_k": result.top_k}
    if result.pruning is not None:
        header["pruning"] = {**dataclasses.asdict(result.pruning), "saved_fraction": result.pruning.saved_fraction}
    extra = ["pruned_at_step", "preview_score"] if pruning else []
    result.table_json, result.table_csv = store.write_tables(rows, components, header, extra_columns=extra)
    settings = {key: value for key, value in header.items() if key != "prompts"}  # the page shows every prompt
    title = f"best-of-{n}: {store.out_dir.resolve().name}"
    result.gallery = write_gallery(
        rows, store.out_dir / GALLERY_NAME, settings=settings, title=title, higher_is_better=higher_is_better
    )[0]


def _contact_sheet_path(out_dir: Path, prompt_index: int) -> Path:
    return out_dir / f"contact_sheet_p{prompt_index:03d}.png"


def _write_contact_sheets(result: BestOfNResult, out_dir: Path, prompts: list[str], prompt_indices: Sequence[int]) -> list[Path]:
    """One contact sheet per prompt of ``prompt_indices``: its finished candidates, best first."""
    paths = []
    for i in prompt_indices:
        rows = [SheetRow(read_video(c.file), _label(c)) for c in result.for_prompt(i) if c.finished]
        paths.append(save_contact_sheet(_contact_sheet_path(out_dir, i), rows, title=f"prompt {i}: {prompts[i]}"))
    return paths


def _quiet_pipeline_progress(pipe: Any):
    """Silence the pipeline's per-call progress bar (best_of_n shows one over all candidates);
    returns a function restoring the previous setting."""
    if not hasattr(pipe, "set_progress_bar_config"):
        return lambda: None
    previous = dict(getattr(pipe, "_progress_bar_config", {}))
    pipe.set_progress_bar_config(disable=True)
    return lambda: pipe.set_progress_bar_config(**previous)
