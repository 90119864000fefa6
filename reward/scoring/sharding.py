"""Scale-out across ``accelerate launch`` processes: which inputs each rank scores, and its files.

accelerate is the engine (process group, ranks, barriers); this module only decides the shard
of each rank (contiguous, via ``split_between_processes``) and names the per-rank files next to
the output: a journal appended while scoring and the shard written atomically when it is done.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from accelerate import PartialState

T = TypeVar("T")


@dataclass
class Processes:
    """The current process within an ``accelerate launch`` run (rank 0 of 1 when run directly)."""

    state: Any

    @classmethod
    def current(cls, *, cpu: bool | None = None) -> "Processes":
        """Join the launch's process group (gloo on CPU) or stand alone; ``cpu`` defaults to "no CUDA"."""
        return cls(PartialState(cpu=not torch.cuda.is_available() if cpu is None else cpu))

    @property
    def rank(self) -> int:
        return self.state.process_index

    @property
    def world(self) -> int:
        return self.state.num_processes

    @property
    def is_main(self) -> bool:
        return self.state.is_main_process

    @property
    def device(self) -> torch.device:
        return self.state.device

    def barrier(self) -> None:
        self.state.wait_for_everyone()

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's contiguous part of ``items`` (the first ranks take one more when it does not divide)."""
        if self.world == 1:
            return list(items)
        with self.state.split_between_processes(list(items)) as part:
            return list(part)


def journal_path(anchor: Path, rank: int) -> Path:
    """Where ``rank`` appends its records while it scores (hidden, next to the output)."""
    return anchor.with_name(f".{anchor.name}.rank{rank}.journal.jsonl")


def shard_path(anchor: Path, rank: int, world: int, *, suffix: str = ".jsonl") -> Path:
    """The finished shard of ``rank``, written atomically (``suffix``: its file type, JSONL by default)."""
    return anchor.with_name(f"{anchor.name}.shard{rank}-of-{world}{suffix}")


def leftover_files(anchor: Path, *, suffix: str = ".jsonl") -> list[Path]:
    """Journals and shards (of type ``suffix``) of earlier multi-process runs on ``anchor`` (any process count), sorted."""
    patterns = (f".{anchor.name}.rank*.journal.jsonl", f"{anchor.name}.shard*-of-*{suffix}")
    return sorted({p for pattern in patterns for p in anchor.parent.glob(pattern)})
