"""The end-of-run summary: how many videos were scored, per-component statistics, and the failures."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .results import TEXT_FIELDS, Record


@dataclass
class ComponentStats:
    mean: float
    std: float
    min: float
    max: float


@dataclass
class ScoringSummary:
    """Counts over every record of the output (earlier runs included when resuming)."""

    total: int
    scored: int
    failed: int
    resumed: int
    processes: int = 1
    stats: dict[str, ComponentStats] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "total": self.total,
            "scored": self.scored,
            "failed": self.failed,
            "resumed": self.resumed,
            "processes": self.processes,
            "stats": {name: vars(stats) for name, stats in self.stats.items()},
            "failures": [{"id": item_id, "error": error} for item_id, error in self.failures],
        }


def summarize(records: Sequence[Record], resumed: int = 0, processes: int = 1) -> ScoringSummary:
    """Mean, sample std (0 for one video), min and max of ``score`` and each component."""
    scored = [r for r in records if "error" not in r]
    failures = [(r["id"], r["error"]) for r in records if "error" in r]
    names: list[str] = []
    for record in scored:
        names.extend(k for k in record if k not in TEXT_FIELDS and k not in names)
    stats = {}
    for name in names:
        values = [float(r[name]) for r in scored if name in r]
        mean = math.fsum(values) / len(values)
        spread = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        stats[name] = ComponentStats(mean, math.sqrt(spread), min(values), max(values))
    return ScoringSummary(len(records), len(scored), len(failures), resumed, processes, stats, failures)
