"""The run's metrics log: every row in ``metrics.jsonl``, plus ``train.csv`` and ``eval.csv`` tables.

A resumed run first cuts each file back to the rows that existed at its checkpoint, so the log
of an interrupted-and-resumed run equals the log of an uninterrupted one.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from reward.checkpoints import atomic_write_text

from .evaluation import finite_or_none

FILES = {"jsonl": "metrics.jsonl", "train": "train.csv", "eval": "eval.csv"}


class MetricsLog:
    """Appends rows of kind ``train`` or ``eval``; a no-op when ``enabled`` is false (non-main processes)."""

    def __init__(self, folder: str | Path, *, enabled: bool = True, rows: dict[str, int] | None = None):
        self.folder = Path(folder)
        self.enabled = enabled
        self.rows = {key: 0 for key in FILES}
        if enabled:
            self.folder.mkdir(parents=True, exist_ok=True)
            for key, name in FILES.items():
                self.rows[key] = self._truncate(self.folder / name, (rows or {}).get(key, 0), header=key != "jsonl")

    @staticmethod
    def _truncate(path: Path, keep: int, *, header: bool) -> int:
        if not path.exists():
            return 0
        lines = path.read_text().splitlines(keepends=True)
        kept = lines[: keep + (1 if header and keep else 0)]
        atomic_write_text(path, "".join(kept))
        return keep

    def log(self, kind: str, row: dict) -> None:
        if not self.enabled:
            return
        row = {key: finite_or_none(value) for key, value in row.items()}
        with open(self.folder / FILES["jsonl"], "a") as stream:
            stream.write(json.dumps({"kind": kind, **row}) + "\n")
        self.rows["jsonl"] += 1
        path = self.folder / FILES[kind]
        columns = self._columns(path, row)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        if self.rows[kind] == 0:
            writer.writeheader()
        writer.writerow(row)
        with open(path, "w" if self.rows[kind] == 0 else "a") as stream:
            stream.write(buffer.getvalue())
        self.rows[kind] += 1

    @staticmethod
    def _columns(path: Path, row: dict) -> list[str]:
        if path.exists() and path.stat().st_size:
            with open(path) as stream:
                return next(csv.reader(stream))
        return list(row)
