"""``score_videos``: decode in workers, score same-shape batches, append results, resume, shard, merge."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..base import VideoReward
from ..errors import RewardInputError, ScoringInputError
from .batching import batches_by_shape
from .dataset import Decoded, PlannedReader, VideoReader, decode_in_workers, reward_input
from .inputs import VideoItem, require_prompts
from .results import (
    Record,
    ResultAppender,
    failure_record,
    merge_records,
    read_records,
    result_columns,
    success_record,
    write_records,
)
from .sharding import Processes, journal_path, leftover_files, shard_path
from .summary import ScoringSummary, summarize


@dataclass
class ScoringRun:
    """What rank 0 gets back: every record of the output in input order, and the summary."""

    records: list[Record]
    summary: ScoringSummary


@dataclass
class _Outputs:
    jsonl: Path | None
    csv: Path | None

    @property
    def anchor(self) -> Path | None:
        return self.jsonl or self.csv

    @property
    def files(self) -> list[Path]:
        return [p for p in (self.jsonl, self.csv) if p is not None]

    def read(self) -> list[Record]:
        return read_records(self.anchor) if self.anchor else []

    def write(self, records: Sequence[Record], columns: Sequence[str]) -> None:
        for path in self.files:
            write_records(path, records, columns)


def score_videos(
    model: VideoReward,
    items: Sequence[VideoItem],
    *,
    out: str | Path | None = None,
    csv: str | Path | None = None,
    resume: bool = False,
    batch_size: int = 8,
    num_workers: int = 2,
    prefetch: int = 2,
    reader: VideoReader | None = None,
    progress: bool = True,
    processes: Processes | None = None,
) -> ScoringRun | None:
    """Score ``items`` with ``model`` and return the merged records and summary (None on ranks > 0).

    Files are decoded only where ``model`` looks (its frame plan), unless a ``reader`` is given (e.g.
    ``dataset.default_reader`` decodes every frame); the scores are the same either way.
    Results are appended to ``out`` (JSONL) and/or ``csv`` after every batch. ``resume=True``
    skips ids already written (also by an interrupted multi-process run); without it an
    existing output is an error rather than silently mixed. Under ``accelerate launch`` each
    process scores a contiguous shard, journals it, writes it atomically as a shard file, and
    rank 0 merges the shards in input order.
    """
    processes = processes or Processes.current(cpu=model.device.type == "cpu")
    outputs = _Outputs(Path(out) if out else None, Path(csv) if csv else None)
    columns = result_columns(model.component_names)
    _check_request(model, items, outputs, processes, resume)
    _prepare_outputs(outputs, items, columns, processes, resume)
    done = {record["id"] for record in outputs.read()}
    todo = [(index, item) for index, item in enumerate(items) if item.id not in done]
    mine = processes.shard(todo)
    decoded = decode_in_workers(mine, reader=reader or PlannedReader(model), num_workers=num_workers, prefetch=prefetch)
    bar = tqdm(total=len(mine), unit="video", desc="scoring", disable=not (progress and processes.is_main))
    new_records = _append_scores(model, decoded, batch_size, outputs, columns, processes, bar)
    merged = _merge_outputs(outputs, items, columns, processes, new_records)
    if merged is None:
        return None
    return ScoringRun(merged, summarize(merged, resumed=len(items) - len(todo), processes=processes.world))


def _check_request(
    model: VideoReward, items: Sequence[VideoItem], outputs: _Outputs, processes: Processes, resume: bool
) -> None:
    if not items:
        raise ScoringInputError("no videos to score.")
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ScoringInputError(f"id {item.id!r} is listed twice; every video needs its own id.")
        seen.add(item.id)
    if model.requires_prompts:
        require_prompts(items, model.architecture or type(model).__name__)
    if processes.world > 1 and outputs.anchor is None:
        raise ScoringInputError("a multi-process run merges its shards into files: pass --out and/or --csv.")
    if resume and outputs.anchor is None:
        raise ScoringInputError("--resume continues a results file: pass --out and/or --csv.")


def _prepare_outputs(
    outputs: _Outputs, items: Sequence[VideoItem], columns: Sequence[str], processes: Processes, resume: bool
) -> None:
    """Refuse to mix into earlier results without ``resume``; with it, rank 0 folds every earlier journal
    and shard into the outputs (complete lines only) before any process reads what is done."""
    leftovers = leftover_files(outputs.anchor) if outputs.anchor else []
    if not resume:
        existing = [p for p in outputs.files if p.is_file() and p.stat().st_size > 0] + leftovers
        if existing:
            raise ScoringInputError(
                f"{existing[0]} already exists; pass --resume to continue that run, or choose another output path."
            )
    elif processes.is_main:
        _merge_into(outputs, [outputs.read(), *map(read_records, leftovers)], items, columns)
        for path in leftovers:
            path.unlink()
    processes.barrier()


def _append_scores(
    model: VideoReward,
    decoded: Iterator[Decoded],
    batch_size: int,
    outputs: _Outputs,
    columns: Sequence[str],
    processes: Processes,
    bar: tqdm,
) -> list[Record]:
    """Score and append batch by batch: to the outputs themselves in a single process, else to this rank's journal."""
    single = processes.world == 1
    target = outputs.jsonl if single else journal_path(outputs.anchor, processes.rank)
    new_records: list[Record] = []
    with ResultAppender(target, outputs.csv if single else None, columns) as appender, bar:
        for records in _scored_records(model, decoded, batch_size, set(columns)):
            appender.append(records)
            new_records.extend(records)
            bar.update(len(records))
    return new_records


def _merge_outputs(
    outputs: _Outputs, items: Sequence[VideoItem], columns: Sequence[str], processes: Processes, new_records: list[Record]
) -> list[Record] | None:
    """Single process: rewrite the outputs in input order. Several: each rank turns its journal into its
    shard file (atomically), then rank 0 merges the shards into the outputs; other ranks get None."""
    if processes.world == 1:
        return _merge_into(outputs, [outputs.read() if outputs.anchor else new_records], items, columns)
    journal = journal_path(outputs.anchor, processes.rank)
    write_records(shard_path(outputs.anchor, processes.rank, processes.world), read_records(journal), columns)
    journal.unlink()
    processes.barrier()
    if not processes.is_main:
        return None
    shards = [shard_path(outputs.anchor, rank, processes.world) for rank in range(processes.world)]
    merged = _merge_into(outputs, [outputs.read(), *map(read_records, shards)], items, columns)
    for path in shards:
        path.unlink()
    return merged


def _merge_into(outputs: _Outputs, sources: list[list[Record]], items: Sequence[VideoItem], columns: Sequence[str]) -> list[Record]:
    merged = merge_records([item.id for item in items], sources)
    outputs.write(merged, columns)
    return merged


def _scored_records(model: VideoReward, decoded: Iterator[Decoded], batch_size: int, columns: set[str]) -> Iterator[list[Record]]:
    """Per batch: the failures met since the last batch, then the batch's scores."""
    failures: list[Record] = []

    def usable() -> Iterator[Decoded]:
        for entry in decoded:
            if entry.error is not None:
                failures.append(failure_record(entry.item, entry.error))
            else:
                yield entry

    for batch in batches_by_shape(usable(), batch_size):
        records = failures.copy()
        failures.clear()
        records.extend(_score_batch(model, batch, columns))
        yield records
    if failures:
        yield failures


def _score_batch(model: VideoReward, batch: list[Decoded], columns: set[str]) -> list[Record]:
    """Score a batch; if the reward rejects it, score each video alone so one bad video fails alone."""
    try:
        rows = _rows(model, batch)
    except RewardInputError as error:
        if len(batch) == 1:
            return [failure_record(batch[0].item, f"{type(error).__name__}: {error}")]
        return [record for entry in batch for record in _score_batch(model, [entry], columns)]
    undeclared = {key for row in rows for key in row} - columns
    if undeclared:
        raise ValueError(
            f"{type(model).__name__} returned components {sorted(undeclared)} missing from its component_names "
            f"{model.component_names}; declare them on the reward class."
        )
    return [success_record(entry.item, row) for entry, row in zip(batch, rows)]


def _rows(model: VideoReward, batch: list[Decoded]) -> list[dict[str, float]]:
    videos, options = reward_input([entry.video for entry in batch])
    prompts = [entry.item.prompt for entry in batch]
    has_prompts = all(prompt is not None for prompt in prompts)
    return model.score(videos, prompts if has_prompts else None, **options).to_rows()
