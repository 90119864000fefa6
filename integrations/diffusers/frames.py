"""Which video frames a differentiable decode returns: all, a stride, the first k, k uniform, k random, or explicit.

A fine-tuning loop rarely needs every frame to compute a reward; decoding fewer frames saves
VAE memory and time. ``FrameSelection.resolve(num_frames)`` turns a selection into indices.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from reward.video.sampling import uniform_frame_indices

MODES = ("all", "stride", "first", "uniform", "random", "indices")


@dataclass(frozen=True)
class FrameSelection:
    """A rule picking frame indices from a video of ``num_frames`` frames (build it with the class methods)."""

    mode: str = "all"
    count: int | None = None
    step: int = 1
    offset: int = 0
    indices: tuple[int, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown frame selection mode {self.mode!r}; choose one of {MODES}")
        if self.mode in ("first", "uniform", "random") and (self.count is None or self.count < 1):
            raise ValueError(f"FrameSelection.{self.mode} needs a frame count >= 1, got {self.count}")
        if self.mode == "stride" and (self.step < 1 or self.offset < 0):
            raise ValueError(f"FrameSelection.stride needs step >= 1 and offset >= 0, got step={self.step}, offset={self.offset}")
        if self.mode == "indices" and not self.indices:
            raise ValueError("FrameSelection.explicit needs at least one frame index")

    @classmethod
    def all(cls) -> "FrameSelection":
        return cls("all")

    @classmethod
    def stride(cls, step: int, offset: int = 0) -> "FrameSelection":
        """Frames ``offset, offset + step, ...``."""
        return cls("stride", step=step, offset=offset)

    @classmethod
    def first(cls, count: int) -> "FrameSelection":
        """The first ``count`` frames (cheapest for causal video VAEs: only a latent prefix is decoded)."""
        return cls("first", count=count)

    @classmethod
    def uniform(cls, count: int) -> "FrameSelection":
        """``count`` frames spread evenly over the video (segment centres), deterministic."""
        return cls("uniform", count=count)

    @classmethod
    def random(cls, count: int, seed: int | None = None) -> "FrameSelection":
        """``count`` distinct frames drawn at random, in temporal order (fresh each call unless seeded)."""
        return cls("random", count=count, seed=seed)

    @classmethod
    def explicit(cls, indices: Sequence[int]) -> "FrameSelection":
        """Exactly these frame indices, in this order (negative indices count from the end)."""
        return cls("indices", indices=tuple(int(i) for i in indices))

    def resolve(self, num_frames: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """The selected frame indices of a ``num_frames``-frame video as a LongTensor."""
        if num_frames < 1:
            raise ValueError(f"cannot select frames from a video of {num_frames} frames")
        if self.mode == "all":
            return torch.arange(num_frames)
        if self.mode == "stride":
            if self.offset >= num_frames:
                raise ValueError(f"stride offset {self.offset} is past the last of {num_frames} frames")
            return torch.arange(self.offset, num_frames, self.step)
        if self.mode == "uniform":
            return uniform_frame_indices(num_frames, self.count)
        if self.mode in ("first", "random") and self.count > num_frames:
            raise ValueError(f"asked for {self.count} frames of a {num_frames}-frame video; use at most {num_frames}")
        if self.mode == "first":
            return torch.arange(self.count)
        if self.mode == "random":
            if self.seed is not None:
                generator = torch.Generator().manual_seed(self.seed)
            return torch.randperm(num_frames, generator=generator)[: self.count].sort().values
        chosen = torch.tensor(self.indices)
        if bool(((chosen >= num_frames) | (chosen < -num_frames)).any()):
            raise ValueError(f"frame indices {list(self.indices)} fall outside a video of {num_frames} frames")
        return chosen % num_frames


def as_frame_selection(frames: "FrameSelection | Sequence[int] | torch.Tensor | str | None") -> FrameSelection:
    """Accept ``None``/``"all"``, a ``FrameSelection``, or explicit indices (a list or a 1-D tensor)."""
    if frames is None or (isinstance(frames, str) and frames == "all"):
        return FrameSelection.all()
    if isinstance(frames, FrameSelection):
        return frames
    if isinstance(frames, torch.Tensor):
        return FrameSelection.explicit(frames.flatten().tolist())
    if isinstance(frames, Sequence) and not isinstance(frames, str):
        return FrameSelection.explicit(frames)
    raise TypeError(
        f"frames must be None, 'all', a FrameSelection (e.g. FrameSelection.stride(2)) or a list of indices, got {frames!r}"
    )
