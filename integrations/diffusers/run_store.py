"""The files of a best-of-N run: resumable state, results tables (JSON + CSV); all written atomically."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reward.checkpoints import atomic_write_text, save_safetensors

from .video_files import write_video

STATE_NAME = "state.json"
TABLE_JSON = "results.json"
TABLE_CSV = "results.csv"
VIDEO_DIR = "videos"


class RunStore:
    """What a best-of-N run has finished, keyed ``"<prompt_index>:<candidate_index>"``.

    ``settings`` (pipeline, generation kwargs, reward, seed rule) must match to resume: a run
    with other settings in the same folder is refused rather than silently mixed.
    """

    def __init__(self, out_dir: str | Path, settings: dict[str, Any], *, resume: bool, fps: float, save_tensors: bool):
        self.out_dir = Path(out_dir)
        self.settings = settings
        self.fps = fps
        self.save_tensors = save_tensors
        self.records: dict[str, dict[str, Any]] = {}
        state_path = self.out_dir / STATE_NAME
        if resume and state_path.is_file():
            state = json.loads(state_path.read_text())
            if state.get("settings") != settings:
                changed = sorted(k for k in settings.keys() | state.get("settings", {}).keys()
                                 if settings.get(k) != state.get("settings", {}).get(k))
                raise ValueError(
                    f"{self.out_dir} holds a best-of-N run with other settings ({', '.join(changed)} differ); "
                    "use another output folder, or resume=False (--no-resume) to start it over."
                )
            self.records = state.get("candidates", {})

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
        score: float, components: dict[str, float], *, pruned_at_step: int | None = None,
        preview_score: float | None = None,
    ) -> Path | None:
        """Record a scored candidate and save its mp4 (and exact tensor if asked); returns the mp4 path.

        Pruned candidates (``video=None``) are recorded without files.
        """
        path, tensor_file = None, ""
        if video is not None:
            name = f"p{prompt_index:03d}_c{candidate_index:03d}_seed{seed}.mp4"
            path = write_video(self.out_dir / VIDEO_DIR / name, video, fps=self.fps)
            if self.save_tensors:
                save_safetensors({"video": video}, path.with_suffix(".safetensors"))
                tensor_file = str(path.with_suffix(".safetensors").relative_to(self.out_dir))
        self.records[self.key(prompt_index, candidate_index)] = {
            "prompt": prompt, "seed": seed, "score": score, "components": components,
            "file": str(path.relative_to(self.out_dir)) if path is not None else "", "tensor_file": tensor_file,
            "pruned_at_step": pruned_at_step, "preview_score": preview_score,
        }
        return path

    def save(self) -> None:
        """Write the state file (atomically: a crash leaves the previous state intact)."""
        state = {"settings": self.settings, "candidates": self.records}
        atomic_write_text(self.out_dir / STATE_NAME, json.dumps(state, indent=1, sort_keys=True))

    def write_tables(
        self, rows: Sequence[dict[str, Any]], components: Sequence[str], header: dict[str, Any],
        extra_columns: Sequence[str] = (),
    ) -> tuple[Path, Path]:
        """``results.json`` (settings + rows) and ``results.csv`` (prompt, seed, rank, score,
        components..., file, then ``extra_columns``)."""
        json_path, csv_path = self.out_dir / TABLE_JSON, self.out_dir / TABLE_CSV
        atomic_write_text(json_path, json.dumps({**header, "candidates": list(rows)}, indent=1))
        columns = ["prompt", "seed", "rank", "score", *components, "file", *extra_columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({**row, **row["components"]} for row in rows)
        atomic_write_text(csv_path, buffer.getvalue())
        return json_path, csv_path
