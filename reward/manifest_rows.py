"""Rows of CSV / TSV / JSON-lines manifests with their line numbers: the one parser behind scoring and training.

Callers validate the rows and word the errors; this module only splits a file into numbered rows.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

#: Suffixes read as JSON lines (one JSON value per line); ``.tsv`` is tab-separated, anything else CSV.
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


class ManifestRows(NamedTuple):
    """A manifest's header (None for JSON lines) and its ``(line number, row)`` pairs, parsed lazily.

    CSV rows are dicts (surplus fields under the key None, missing ones None); JSON rows are
    whatever each non-blank line holds. CSV line numbers are those of the file, header = line 1.
    """

    columns: list[str] | None
    rows: Iterator[tuple[int, Any]]


def read_manifest_rows(
    path: Path, *, invalid_json: Callable[[int, json.JSONDecodeError], Exception], encoding: str = "utf-8"
) -> ManifestRows:
    """Split ``path`` into numbered rows; a line that is not JSON raises ``invalid_json(line, error)``.

    ``encoding="utf-8-sig"`` also accepts a leading byte-order mark (spreadsheet exports write one).
    """
    with path.open(newline="", encoding=encoding) as handle:
        text = handle.read()
    suffix = path.suffix.lower()
    if suffix in JSON_LINES_SUFFIXES:
        return ManifestRows(None, _json_rows(text, invalid_json))
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
    return ManifestRows(list(reader.fieldnames or []), ((reader.line_num, row) for row in reader))


def _json_rows(text: str, invalid_json: Callable[[int, json.JSONDecodeError], Exception]) -> Iterator[tuple[int, Any]]:
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            row = json.loads(content)
        except json.JSONDecodeError as error:
            raise invalid_json(line, error) from None
        yield line, row


def resolve_listed_path(listed: str, folder: Path) -> Path:
    """A path as a manifest lists it (``~`` expanded); relative ones are taken from ``folder``."""
    path = Path(listed).expanduser()
    return path if path.is_absolute() else folder / path
