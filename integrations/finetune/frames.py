"""Which frames a fine-tuning step decodes and scores: decoding fewer frames saves VAE memory and time."""
from __future__ import annotations

from dataclasses import dataclass

import torch

MODES = ("all", "stride", "random", "first")


@dataclass(frozen=True)
class FrameSelection:
    """``all``, ``stride:N`` (every N-th frame), ``random:K`` (K random frames, in order) or ``first:K``."""

    mode: str = "all"
    count: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown frame selection {self.mode!r}; use one of {MODES} (e.g. 'stride:2', 'random:4')")
        if self.count < 1:
            raise ValueError(f"frame selection {self.mode}:{self.count} needs a count >= 1")

    @classmethod
    def parse(cls, spec: "str | FrameSelection") -> "FrameSelection":
        """``"all"``, ``"stride:2"``, ``"random:4"``, ``"first:1"``."""
        if isinstance(spec, FrameSelection):
            return spec
        mode, _, count = spec.strip().partition(":")
        try:
            return cls(mode, int(count) if count else 1)
        except ValueError as error:
            if "frame selection" in str(error):
                raise
            raise ValueError(f"frame selection {spec!r}: {count!r} is not an integer") from None

    def indices(self, num_frames: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Sorted frame indices to keep, or ``None`` for every frame."""
        if self.mode == "all":
            return None
        if self.mode == "stride":
            return torch.arange(0, num_frames, self.count)
        count = min(self.count, num_frames)
        if self.mode == "first":
            return torch.arange(count)
        return torch.randperm(num_frames, generator=generator)[:count].sort().values

    def __str__(self) -> str:
        return self.mode if self.mode == "all" else f"{self.mode}:{self.count}"
