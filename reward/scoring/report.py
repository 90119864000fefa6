"""Plain-text tables of results and summaries for the terminal."""
from __future__ import annotations

from collections.abc import Sequence

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
