"""Seeded train/test splits: the T2VQA-DB protocol (10 random 80/20 splits) and k-fold.

Splits are drawn over groups when ``groups`` is given (e.g. prompts, so the same prompt never
lands on both sides); otherwise each item is its own group. Each split is a function of
(n, seed, index) only, so any one of them can be rebuilt without the others.
"""
from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from reward.checkpoints import atomic_write_text
from reward.errors import DatasetError


@dataclass(frozen=True)
class Split:
    """Item indices of each part; ``val`` is empty unless a validation fraction was asked for."""

    train: tuple[int, ...]
    test: tuple[int, ...]
    val: tuple[int, ...] = ()

    def save(self, path: str | Path) -> Path:
        atomic_write_text(path, json.dumps({k: list(v) for k, v in asdict(self).items()}))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        payload = json.loads(Path(path).read_text())
        return cls(**{k: tuple(int(i) for i in v) for k, v in payload.items()})


def _groups(n: int, groups: Sequence[Hashable] | None) -> list[list[int]]:
    if groups is None:
        return [[i] for i in range(n)]
    if len(groups) != n:
        raise DatasetError(f"got {len(groups)} group labels for {n} items")
    members: dict[Hashable, list[int]] = {}
    for index, label in enumerate(groups):
        members.setdefault(label, []).append(index)
    return list(members.values())


def _take(groups: list[list[int]], order: np.ndarray) -> tuple[int, ...]:
    return tuple(sorted(i for g in order for i in groups[g]))


def random_split(
    n: int,
    index: int,
    *,
    train_fraction: float = 0.8,
    val_fraction: float = 0.0,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> Split:
    """Split ``index`` of the random-splits protocol: a seeded shuffle, first ``train_fraction`` to train.

    ``val_fraction`` (of all items) is carved out of the training part for checkpoint selection.
    """
    if not 0 < train_fraction < 1 or not 0 <= val_fraction < train_fraction:
        raise DatasetError(f"need 0 <= val_fraction < train_fraction < 1, got {val_fraction} and {train_fraction}")
    members = _groups(n, groups)
    if len(members) < 2:
        raise DatasetError(f"cannot split {len(members)} group(s) into train and test")
    order = np.random.default_rng([seed, index]).permutation(len(members))
    n_train = min(max(1, round(train_fraction * len(members))), len(members) - 1)
    n_val = round(val_fraction * len(members))
    return Split(
        train=_take(members, order[n_val:n_train]), test=_take(members, order[n_train:]), val=_take(members, order[:n_val])
    )


def random_splits(n: int, num_splits: int = 10, **kwargs) -> list[Split]:
    """The T2VQA-DB protocol: ``num_splits`` independent seeded 80/20 splits (report the mean)."""
    return [random_split(n, index, **kwargs) for index in range(num_splits)]


def kfold_split(n: int, fold: int, k: int = 5, *, seed: int = 0, groups: Sequence[Hashable] | None = None) -> Split:
    """Fold ``fold`` of a seeded k-fold: one shuffle, cut into ``k`` near-equal parts; part ``fold`` is the test."""
    members = _groups(n, groups)
    if not 2 <= k <= len(members) or not 0 <= fold < k:
        raise DatasetError(f"k-fold needs 2 <= k <= {len(members)} groups and 0 <= fold < k, got k={k}, fold={fold}")
    parts = np.array_split(np.random.default_rng([seed, k]).permutation(len(members)), k)
    train = np.concatenate([part for i, part in enumerate(parts) if i != fold])
    return Split(train=_take(members, train), test=_take(members, parts[fold]))
