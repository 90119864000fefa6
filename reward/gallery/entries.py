"""Run records -> gallery entries: the keys a page reads, ranks per prompt, prompt groups, table columns.

A record is a mapping, the rows best-of-N writes to ``results.json``: ``score`` (or ``error``) and
optionally ``prompt``, ``file`` (the video, relative to the page's folder or absolute),
``components`` (name -> number), ``rank`` (1 = best of its prompt), ``seed``, ``id``; every other key
(``candidate_index``, ``pruned_at_step``, a search strategy's lineage, ...) is shown as it is.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

#: Keys with a meaning of their own; any other key of a record is an extra.
KNOWN_KEYS = ("prompt", "file", "score", "components", "rank", "seed", "id", "error")
#: Extras that are scalars become table columns; these hold the types that count as scalars.
SCALARS = (str, int, float, bool)


@dataclass
class Entry:
    """One candidate as a page shows it; ``position`` is its place in the records (its anchor ``c<position>``)."""

    position: int
    score: float | None
    prompt: str | None = None
    file: Path | None = None
    components: dict[str, float] = field(default_factory=dict)
    rank: int | None = None
    seed: int | None = None
    id: str | None = None
    error: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _entry(position: int, record: Any, base_dir: Path) -> Entry:
    where = f"gallery record {position}"
    if not isinstance(record, Mapping):
        raise ValueError(f"{where} must be a mapping (a results.json row), got {type(record).__name__}")
    error = record.get("error") or None
    score = record.get("score")
    if score in (None, "") and error is None:
        raise ValueError(f"{where} has neither 'score' nor 'error' (keys: {sorted(record)}); give each candidate its score")
    components = record.get("components") or {}
    if not isinstance(components, Mapping):
        raise ValueError(f"{where}: 'components' must map names to numbers, got {type(components).__name__}")
    file = record.get("file") or None
    prompt = record.get("prompt")
    return Entry(
        position=position,
        score=None if score in (None, "") else _number(score, f"{where}: 'score'"),
        prompt=None if prompt in (None, "") else str(prompt),
        file=None if file is None else base_dir / Path(file),
        components={str(k): _number(v, f"{where}: component {k!r}") for k, v in components.items()},
        rank=None if record.get("rank") in (None, "") else int(record["rank"]),
        seed=None if record.get("seed") in (None, "") else int(record["seed"]),
        id=None if record.get("id") in (None, "") else str(record["id"]),
        error=None if error is None else str(error),
        extras={k: v for k, v in record.items() if k not in KNOWN_KEYS and v not in (None, "")},
    )


def to_entries(records: Sequence[Mapping[str, Any]], base_dir: Path, *, higher_is_better: bool = True) -> list[Entry]:
    """Check and read ``records``; relative files are taken from ``base_dir``. Entries without a rank
    get one: per prompt, by score (records with an error come last, unranked)."""
    entries = [_entry(position, record, Path(base_dir)) for position, record in enumerate(records)]
    if not entries:
        raise ValueError("a gallery needs at least one record")
    if any(entry.rank is None and entry.score is not None for entry in entries):
        _rank(entries, higher_is_better)
    return entries


def _rank(entries: list[Entry], higher_is_better: bool) -> None:
    sign = -1.0 if higher_is_better else 1.0
    for group in _by_prompt(entries).values():
        scored = [e for e in group if e.score is not None and not math.isnan(e.score)]
        for rank, entry in enumerate(sorted(scored, key=lambda e: (sign * e.score, e.position)), start=1):
            entry.rank = rank


def _by_prompt(entries: Sequence[Entry]) -> dict[str | None, list[Entry]]:
    groups: dict[str | None, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.prompt, []).append(entry)
    return groups


def prompt_groups(entries: Sequence[Entry]) -> list[list[Entry]]:
    """Entries grouped by prompt (in order of first appearance), best rank first; unranked last."""
    ranked = lambda e: (e.rank is None, e.rank or 0, e.position)  # noqa: E731
    return [sorted(group, key=ranked) for group in _by_prompt(entries).values()]


@dataclass(frozen=True)
class Column:
    """A table column: its title, how to read an entry's value, and whether it sorts as a number."""

    title: str
    value: Callable[[Entry], Any]
    numeric: bool = False
    #: Scores are best looked at highest first; ranks, seeds and text lowest first.
    descending_first: bool = False
    #: Its cells link to the candidate's card (the rank column).
    links_to_card: bool = False
    #: A CSS class for its cells (long text columns wrap).
    css: str = ""


def _extra_is_number(entries: Sequence[Entry], name: str) -> bool:
    values = [e.extras[name] for e in entries if name in e.extras]
    return all(isinstance(v, Real) and not isinstance(v, bool) for v in values)


def columns(entries: Sequence[Entry], higher_is_better: bool = True) -> list[Column]:
    """rank, prompt, [id], [seed], score, every component, every scalar extra, file, [error]:
    optional columns only where some entry has a value."""
    def any_has(get: Callable[[Entry], Any]) -> bool:
        return any(get(e) is not None for e in entries)

    result = [Column("rank", lambda e: e.rank, numeric=True, links_to_card=True),
              Column("prompt", lambda e: e.prompt or "", css="prompt")]
    if any_has(lambda e: e.id):
        result.append(Column("id", lambda e: e.id or ""))
    if any_has(lambda e: e.seed):
        result.append(Column("seed", lambda e: e.seed, numeric=True))
    result.append(Column("score", lambda e: e.score, numeric=True, descending_first=higher_is_better))
    names = list(dict.fromkeys(name for e in entries for name in e.components))
    result += [Column(name, lambda e, n=name: e.components.get(n), numeric=True, descending_first=True) for name in names]
    extras = [n for n in dict.fromkeys(n for e in entries for n in e.extras)
              if all(isinstance(e.extras.get(n, ""), SCALARS) for e in entries)]
    for name in extras:
        numeric = _extra_is_number(entries, name)
        missing = None if numeric else ""
        result.append(Column(name, lambda e, n=name, m=missing: e.extras.get(n, m), numeric=numeric))
    result.append(Column("file", lambda e: e.file.name if e.file is not None else ""))
    if any_has(lambda e: e.error):
        result.append(Column("error", lambda e: e.error or "", css="error"))
    return result
