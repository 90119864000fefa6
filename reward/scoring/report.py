"""Plain-text tables of results and summaries for the terminal; results as rows of a gallery page."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..text_table import format_table
from .results import TEXT_FIELDS, Record
from .summary import ScoringSummary


def results_table(records: Sequence[Record], limit: int | None = None) -> str:
    """One row per video: id, score, every component; failed videos show their error instead."""
    names: list[str] = []
    for record in records:
        names.extend(k for k in record if k not in TEXT_FIELDS and k not in names)
    shown = records if limit is None else records[:limit]
    failed = any("error" in r for r in shown)
    headers = ["id", *names] + (["error"] if failed else [])
    rows = [[r["id"], *(r.get(n) for n in names)] + ([r.get("error")] if failed else []) for r in shown]
    table = format_table(headers, rows)
    if len(shown) < len(records):
        table += f"\n... {len(records) - len(shown)} more rows"
    return table


def summary_table(summary: ScoringSummary) -> str:
    """Counts, then mean / std / min / max per component, then each failure with its reason."""
    lines = [
        f"videos: {summary.total}  scored: {summary.scored}  failed: {summary.failed}"
        + (f"  processes: {summary.processes}" if summary.processes > 1 else "")
        + (f"  (already in the output before this run: {summary.resumed})" if summary.resumed else "")
    ]
    if summary.stats:
        rows = [[name, s.mean, s.std, s.min, s.max] for name, s in summary.stats.items()]
        lines.append(format_table(["component", "mean", "std", "min", "max"], rows))
    if summary.failures:
        lines.append("failures:")
        lines.extend(f"  {item_id}: {error}" for item_id, error in summary.failures)
    return "\n".join(lines)


def gallery_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Scoring records as ``reward.gallery.write_gallery`` rows: absolute ``file``, components apart,
    ``id`` only where it is not the path (its default)."""
    rows = []
    for record in records:
        row: dict[str, Any] = {"file": str(Path(record["path"]).absolute())}
        for key in ("prompt", "score", "error"):
            if key in record:
                row[key] = record[key]
        if record["id"] != record["path"]:
            row["id"] = record["id"]
        row["components"] = {k: v for k, v in record.items() if k not in TEXT_FIELDS and k != "score"}
        rows.append(row)
    return rows
