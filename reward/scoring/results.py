"""Result records: appended to JSONL / CSV as batches finish, read back for ``--resume``, merged in order.

A record is one line per video: ``id``, ``path``, ``prompt``, ``score``, one field per component,
or ``error`` when the video could not be scored. Only complete lines count when reading back, so
a line cut by a crash is dropped (and that video scored again) rather than merged half-written.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..checkpoints import atomic_write_text
from ..errors import ScoringInputError
from .inputs import VideoItem

Record = dict[str, Any]
TEXT_FIELDS = ("id", "path", "prompt", "error")


def result_columns(component_names: Sequence[str]) -> list[str]:
    """Column order of every results file: identity, score, components, error."""
    clash = sorted(set(component_names) & set(TEXT_FIELDS + ("score",)))
    if clash:
        raise ValueError(f"component names {clash} collide with result columns {TEXT_FIELDS + ('score',)}")
    return ["id", "path", "prompt", "score", *component_names, "error"]


def success_record(item: VideoItem, values: dict[str, float]) -> Record:
    record: Record = {"id": item.id, "path": item.path}
    if item.prompt is not None:
        record["prompt"] = item.prompt
    record.update(values)
    return record


def failure_record(item: VideoItem, error: str) -> Record:
    record: Record = {"id": item.id, "path": item.path}
    if item.prompt is not None:
        record["prompt"] = item.prompt
    record["error"] = error
    return record


def _complete_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return text.splitlines(keepends=True)


def _csv_text(records: Iterable[Record], columns: Sequence[str], *, header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for record in records:
        writer.writerow(["" if record.get(c) is None else record[c] for c in columns])
    return buffer.getvalue()


def _jsonl_text(records: Iterable[Record]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def read_csv_header(path: Path) -> list[str] | None:
    lines = _complete_lines(path) if path.is_file() else []
    return next(csv.reader(lines[:1]), None)


def read_records(path: str | Path) -> list[Record]:
    """Records of a results file (``.csv`` or JSONL); an absent file has none."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = _complete_lines(path)
    if path.suffix.lower() == ".csv":
        records = []
        for row in csv.DictReader(lines):
            record: Record = {}
            for key, value in row.items():
                if value in ("", None):
                    continue
                record[key] = value if key in TEXT_FIELDS else float(value)
            records.append(record)
        return records
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ScoringInputError(
                f"results file {path} line {number} is not valid JSON ({error.msg}); "
                "was it edited by hand? Fix or remove that line, or write to a new --out."
            ) from None
    return records


def write_records(path: str | Path, records: Sequence[Record], columns: Sequence[str]) -> None:
    """Write a whole results file atomically (CSV when the suffix is ``.csv``, else JSONL)."""
    path = Path(path)
    text = _csv_text(records, columns, header=True) if path.suffix.lower() == ".csv" else _jsonl_text(records)
    atomic_write_text(path, text)


def merge_records(order: Sequence[str], sources: Iterable[Sequence[Record]]) -> list[Record]:
    """One record per id (the first one found wins), in the order of ``order``; ids not in it follow."""
    by_id: dict[str, Record] = {}
    for records in sources:
        for record in records:
            by_id.setdefault(record["id"], record)
    position = {item_id: i for i, item_id in enumerate(order)}
    late = len(position)
    return sorted(by_id.values(), key=lambda r: position.get(r["id"], late))


class ResultAppender:
    """Appends records to a JSONL and/or CSV file and flushes after every call (one call per batch)."""

    def __init__(self, jsonl: Path | None, csv_path: Path | None, columns: Sequence[str]):
        self.columns = list(columns)
        self.handles = []
        if jsonl is not None:
            self.handles.append(("jsonl", _open_append(jsonl)))
        if csv_path is not None:
            header = read_csv_header(csv_path)
            if header is not None and header != self.columns:
                raise ScoringInputError(
                    f"{csv_path} has columns {header}, but this reward writes {self.columns}; "
                    "it was written by another reward: choose another --csv path."
                )
            handle = _open_append(csv_path)
            if header is None:
                handle.write(_csv_text([], self.columns, header=True))
            self.handles.append(("csv", handle))

    def append(self, records: Sequence[Record]) -> None:
        if not records:
            return
        for kind, handle in self.handles:
            handle.write(_jsonl_text(records) if kind == "jsonl" else _csv_text(records, self.columns, header=False))
            handle.flush()

    def close(self) -> None:
        for _, handle in self.handles:
            handle.close()
        self.handles = []

    def __enter__(self) -> "ResultAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_append(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8", newline="")
