"""The files of a best-of-N run: resumable state, results tables (JSON + CSV); all written atomically.

Under ``accelerate launch`` every process records its candidates in its own shard of the state
(``state.shardR-of-W.json``, rewritten after every batch); rank 0 folds the shards into
``state.json`` when all are done, and at the start of a resumed run folds those an interrupted
run left behind.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reward.checkpoints import atomic_write_text, save_safetensors
from reward.scoring.sharding import leftover_files, shard_path

from .video_files import write_video

STATE_NAME = "state.json"
TABLE_JSON = "results.json"
TABLE_CSV = "results.csv"
VIDEO_DIR = "videos"

Records = dict[str, dict[str, Any]]


def shard_state_path(out_dir: Path, rank: int, world: int) -> Path:
    """Where process ``rank`` of ``world`` records the candidates it finishes."""
    return shard_path(Path(out_dir) / Path(STATE_NAME).stem, rank, world, suffix=".json")


def read_state(path: Path, settings: dict[str, Any]) -> Records:
    """The candidate records of a state file (none when absent); a run with other settings is refused."""
    if not path.is_file():
        return {}
    state = json.loads(path.read_text())
    if state.get("settings") != settings:
        changed = sorted(k for k in settings.keys() | state.get("settings", {}).keys()
                         if settings.get(k) != state.get("settings", {}).get(k))
        raise ValueError(
            f"{path.parent} holds a run with other settings ({', '.join(changed)} differ); "
            "use another output folder, or resume=False (--no-resume) to start it over."
        )
    return state.get("candidates", {})


def write_state(path: Path, settings: dict[str, Any], records: Records) -> None:
    """Write a state file atomically: a crash leaves the previous one intact."""
    atomic_write_text(path, json.dumps({"settings": settings, "candidates": records}, indent=1))


def fold_shards(out_dir: Path, settings: dict[str, Any], shards: Sequence[Path]) -> Records:
    """Add the records of state ``shards`` to ``state.json``, then delete them; returns their records."""
    folded: Records = {}
    for path in shards:
        folded.update(read_state(path, settings))
    state_path = Path(out_dir) / STATE_NAME
    write_state(state_path, settings, {**read_state(state_path, settings), **folded})
    for path in shards:
        path.unlink()
    return folded


def prepare_state(out_dir: Path, settings: dict[str, Any], *, resume: bool) -> None:
    """Run once, by rank 0, before any process opens its store: fold the shards an interrupted run
    left (``resume``), or start ``state.json`` over and drop them."""
    leftovers = leftover_files(Path(out_dir) / Path(STATE_NAME).stem, suffix=".json")
    if resume:
        if leftovers:
            fold_shards(out_dir, settings, leftovers)
        return
    write_state(Path(out_dir) / STATE_NAME, settings, {})
    for path in leftovers:
        path.unlink()


class RunStore:
    """What a best-of-N run has finished, keyed ``"<prompt_index>:<candidate_index>"``.

    Opens ``state.json`` (see ``prepare_state``); ``settings`` (pipeline, generation kwargs,
    reward, seed rule) must match it, so a run with other settings in the same folder is refused
    rather than silently mixed. With ``shard`` the candidates finished by this process are saved
    there instead of into ``state.json``.
    """

    def __init__(
        self, out_dir: str | Path, settings: dict[str, Any], *, fps: float, save_tensors: bool, shard: Path | None = None
    ):
        self.out_dir = Path(out_dir)
        self.settings = settings
        self.fps = fps
        self.save_tensors = save_tensors
        self.shard = shard
        self.records = read_state(self.out_dir / STATE_NAME, settings)
        self.added: list[str] = []

    @staticmethod
    def key(prompt_index: int, candidate_index: int) -> str:
        return f"{prompt_index}:{candidate_index}"

    def finished(self, prompt_index: int, candidate_index: int, prompt: str, seed: int) -> dict[str, Any] | None:
        """The stored record if this candidate was scored and its files are on disk, else None."""
        record = self.records.get(self.key(prompt_index, candidate_index))
        if record is None or record["prompt"] != prompt or record["seed"] != seed:
            return None
        if record.get("pruned_at_step") is not None:
            return record
        files = [record["file"]] + ([record["tensor_file"]] if self.save_tensors else [])
        return record if all(name and (self.out_dir / name).is_file() for name in files) else None

    def add(
        self, prompt_index: int, candidate_index: int, prompt: str, seed: int, video: torch.Tensor | None,
        score: float | None, components: dict[str, float], *, pruned_at_step: int | None = None,
        preview_score: float | None = None, extra: dict[str, Any] | None = None,
    ) -> Path | None:
        """Record a scored candidate and save its mp4 (and exact tensor if asked); returns the mp4 path.

        Pruned candidates (``video=None``) are recorded without files. ``extra`` adds fields to the
        record (a search's lineage).
        """
        path, tensor_file = None, ""
        if video is not None:
            name = f"p{prompt_index:03d}_c{candidate_index:03d}_seed{seed}.mp4"
            path = write_video(self.out_dir / VIDEO_DIR / name, video, fps=self.fps)
            if self.save_tensors:
                save_safetensors({"video": video}, path.with_suffix(".safetensors"))
                tensor_file = str(path.with_suffix(".safetensors").relative_to(self.out_dir))
        key = self.key(prompt_index, candidate_index)
        self.added.append(key)
        self.records[key] = {
            "prompt": prompt, "seed": seed, "score": score, "components": components,
            "file": str(path.relative_to(self.out_dir)) if path is not None else "", "tensor_file": tensor_file,
            "pruned_at_step": pruned_at_step, "preview_score": preview_score, **(extra or {}),
        }
        return path

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Record something other than a candidate under ``key`` (a search's per-prompt summary)."""
        self.added.append(key)
        self.records[key] = record

    def save(self) -> None:
        """Write ``state.json``, or with a ``shard`` the candidates this process added to it."""
        if self.shard is None:
            write_state(self.out_dir / STATE_NAME, self.settings, self.records)
        else:
            write_state(self.shard, self.settings, {key: self.records[key] for key in self.added})

    def merge_shards(self, world: int) -> Records:
        """Rank 0, once every process is done: fold their shards into ``state.json``; returns their records."""
        shards = [path for rank in range(world) if (path := shard_state_path(self.out_dir, rank, world)).is_file()]
        folded = fold_shards(self.out_dir, self.settings, shards)
        self.records.update(folded)
        return folded

    def write_tables(
        self, rows: Sequence[dict[str, Any]], components: Sequence[str], header: dict[str, Any],
        extra_columns: Sequence[str] = (),
    ) -> tuple[Path, Path]:
        """``results.json`` (settings + rows) and ``results.csv`` (prompt, seed, rank, score,
        components..., file, then ``extra_columns``; lists and dicts there as JSON)."""
        json_path, csv_path = self.out_dir / TABLE_JSON, self.out_dir / TABLE_CSV
        atomic_write_text(json_path, json.dumps({**header, "candidates": list(rows)}, indent=1))
        columns = ["prompt", "seed", "rank", "score", *components, "file", *extra_columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({**_as_cells(row), **row["components"]} for row in rows)
        atomic_write_text(csv_path, buffer.getvalue())
        return json_path, csv_path


def _as_cells(row: dict[str, Any]) -> dict[str, Any]:
    return {key: json.dumps(value) if isinstance(value, (dict, list)) else value for key, value in row.items()}
