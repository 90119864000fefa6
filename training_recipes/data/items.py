"""Dataset annotations -> a list of ``QualityItem``: T2VQA-DB, AIGIQA-20K-style tables, generic CSV/JSONL."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from reward.errors import DatasetError
from reward.manifest_rows import read_manifest_rows, resolve_listed_path

#: Column names of the generic manifest format (CSV with a header, or JSON lines).
MANIFEST_COLUMNS = ("path", "prompt", "mos")
#: Column names of AIGIQA-20K-style image tables.
IMAGE_TABLE_COLUMNS = ("name", "prompt", "mos")


@dataclass
class QualityItem:
    """One rated sample: a media file (or an in-memory ``[T, 3, H, W]`` tensor), its prompt and MOS."""

    source: Path | torch.Tensor
    prompt: str
    mos: float
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            self.name = str(self.source) if isinstance(self.source, Path) else "<tensor>"


def _mos(value: Any, where: str) -> float:
    try:
        mos = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: MOS {value!r} is not a number") from None
    if not math.isfinite(mos):
        raise DatasetError(f"{where}: MOS is {mos}; drop or fix that row")
    return mos


def _prompt(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{where}: the prompt is empty; every item needs the text it was generated from")
    return value.strip()


def read_t2vqa_db(root: str | Path, annotations: str = "info.txt", videos: str = "videos") -> list[QualityItem]:
    """T2VQA-DB layout: ``root/annotations`` holds lines ``filename|prompt|mos``; files in ``root/videos``.

    The prompt is everything between the first and the last ``|``, so prompts may contain ``|``.
    """
    root = Path(root).expanduser()
    annotation_file = root / annotations
    if not annotation_file.is_file():
        raise DatasetError(f"T2VQA-DB annotations {annotation_file} not found; set data.annotations to the .txt file")
    items = []
    for number, line in enumerate(annotation_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{annotation_file}:{number}"
        if line.count("|") < 2:
            raise DatasetError(f"{where}: expected 'filename|prompt|mos', got {line!r}")
        filename, rest = line.split("|", 1)
        prompt, mos = rest.rsplit("|", 1)
        items.append(QualityItem(root / videos / filename.strip(), _prompt(prompt, where), _mos(mos, where)))
    return _non_empty(items, annotation_file)


def read_table(
    table: str | Path,
    root: str | Path | None = None,
    *,
    columns: Sequence[str] = MANIFEST_COLUMNS,
) -> list[QualityItem]:
    """A CSV/TSV with a header or a JSON-lines file; ``columns`` names the (path, prompt, mos) fields.

    Relative paths resolve against ``root`` (default: the table's folder). Other columns are
    kept in ``item.extra``.
    """
    table = Path(table).expanduser()
    if not table.is_file():
        raise DatasetError(f"annotation table {table} not found")
    if table.suffix.lower() in {".xlsx", ".xls"}:
        raise DatasetError(f"{table} is a spreadsheet; export it as CSV (File > Save as > CSV) and pass that file")
    base = Path(root).expanduser() if root is not None else table.parent
    path_key, prompt_key, mos_key = columns
    items = []
    _, rows = read_manifest_rows(
        table, encoding="utf-8-sig", invalid_json=lambda number, error: DatasetError(f"{table}:{number}: not valid JSON ({error})")
    )
    for number, row in rows:
        where = f"{table}:{number}"
        if not isinstance(row, dict) or None in row:
            raise DatasetError(f"{where}: expected one value per header column (or a JSON object), got {row!r}")
        missing = [key for key in columns if key not in row]
        if missing:
            raise DatasetError(f"{where}: missing columns {missing} (has {sorted(row)}); set data.columns")
        extra = {k: v for k, v in row.items() if k not in columns}
        items.append(
            QualityItem(
                resolve_listed_path(str(row[path_key]), base), _prompt(row[prompt_key], where), _mos(row[mos_key], where), extra=extra
            )
        )
    return _non_empty(items, table)


def read_image_table(table: str | Path, images: str | Path | None = None, *, columns: Sequence[str] = IMAGE_TABLE_COLUMNS) -> list[QualityItem]:
    """AIGIQA-20K-style image table (``name, prompt, mos`` columns, images in ``images``); scored as T = 1."""
    return read_table(table, images, columns=columns)


def _non_empty(items: list[QualityItem], source: Path) -> list[QualityItem]:
    if not items:
        raise DatasetError(f"{source} lists no items")
    return items


def write_manifest(items: Sequence[QualityItem], path: str | Path) -> Path:
    """Write items as a JSON-lines manifest (paths relative to its folder when possible), atomically."""
    from reward.checkpoints import atomic_write_text

    path = Path(path)
    lines = []
    for item in items:
        if not isinstance(item.source, Path):
            raise DatasetError(f"item {item.name} holds a tensor; write its frames to a file before listing it")
        try:
            location = item.source.relative_to(path.parent)
        except ValueError:
            location = item.source
        lines.append(json.dumps({"path": str(location), "prompt": item.prompt, "mos": item.mos, **item.extra}))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
