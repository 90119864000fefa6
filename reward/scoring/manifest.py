"""CSV / JSONL manifests (``path``, ``prompt``[, ``id``]): every problem names its line number."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..errors import ScoringInputError
from .inputs import VideoItem

MANIFEST_SUFFIXES = (".csv", ".jsonl")


def read_manifest(path: str | Path) -> list[VideoItem]:
    """Parse a manifest into items in file order.

    Relative paths are resolved against the manifest's folder; the id defaults to the path as
    written. Missing video files are not a manifest error: the run reports them per video.
    """
    path = Path(path)
    if not path.is_file():
        raise ScoringInputError(f"manifest {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path)
    elif suffix == ".jsonl":
        rows = _jsonl_rows(path)
    else:
        raise ScoringInputError(f"manifest {path} must be {' or '.join(MANIFEST_SUFFIXES)} (columns path, prompt[, id]).")
    items: list[VideoItem] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        item = _item(path, line, row)
        if item.id in first_line:
            raise ScoringInputError(
                f"{path} line {line}: id {item.id!r} is already used on line {first_line[item.id]}; ids must be unique."
            )
        first_line[item.id] = line
        items.append(item)
    if not items:
        raise ScoringInputError(f"manifest {path} lists no videos.")
    return items


def _csv_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        if "path" not in header:
            raise ScoringInputError(f"{path} line 1: the header has no 'path' column (found {header}); expected path, prompt[, id].")
        rows = []
        for row in reader:
            if None in row:
                raise ScoringInputError(f"{path} line {reader.line_num}: more fields than the {len(header)} header columns.")
            rows.append((reader.line_num, row))
        return rows


def _jsonl_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            raise ScoringInputError(f"{path} line {line}: not valid JSON ({error.msg} at column {error.colno}).") from None
        if not isinstance(row, dict):
            raise ScoringInputError(f"{path} line {line}: expected a JSON object with path and prompt, got {type(row).__name__}.")
        rows.append((line, row))
    return rows


def _text(path: Path, line: int, row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ScoringInputError(f"{path} line {line}: {key!r} must be a string, got {type(value).__name__}.")
    value = str(value).strip()
    return value or None


def _item(path: Path, line: int, row: dict[str, Any]) -> VideoItem:
    video = _text(path, line, row, "path")
    if video is None:
        raise ScoringInputError(f"{path} line {line}: no 'path' given; every row needs the video's path.")
    prompt = _text(path, line, row, "prompt")
    item_id = _text(path, line, row, "id") or video
    resolved = Path(video).expanduser()
    if not resolved.is_absolute():
        resolved = path.parent / resolved
    return VideoItem(id=item_id, path=str(resolved), prompt=prompt)
