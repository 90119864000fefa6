"""CSV / JSONL manifests (``path``, ``prompt``[, ``id``]): every problem names its line number."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ScoringInputError
from ..manifest_rows import read_manifest_rows, resolve_listed_path
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
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise ScoringInputError(f"manifest {path} must be {' or '.join(MANIFEST_SUFFIXES)} (columns path, prompt[, id]).")
    items: list[VideoItem] = []
    first_line: dict[str, int] = {}
    for line, row in _rows(path):
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


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Every row, checked for shape before any is turned into an item."""
    header, parsed = read_manifest_rows(
        path,
        invalid_json=lambda line, error: ScoringInputError(
            f"{path} line {line}: not valid JSON ({error.msg} at column {error.colno})."
        ),
    )
    if header is not None and "path" not in header:
        raise ScoringInputError(f"{path} line 1: the header has no 'path' column (found {header}); expected path, prompt[, id].")
    rows = []
    for line, row in parsed:
        if not isinstance(row, dict):
            raise ScoringInputError(f"{path} line {line}: expected a JSON object with path and prompt, got {type(row).__name__}.")
        if None in row:
            raise ScoringInputError(f"{path} line {line}: more fields than the {len(header)} header columns.")
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
    return VideoItem(id=item_id, path=str(resolve_listed_path(video, path.parent)), prompt=prompt)
