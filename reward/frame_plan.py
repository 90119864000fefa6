"""Frame plans: which frames of a ``T``-frame video a reward looks at, so a file is decoded only there.

A reward's ``frame_plan(T)`` lists the frames its deterministic default views use. A reader
decodes just those into a compact clip ``[K, 3, H, W]``; the plan is the mapping back, so the
reward samples the compact clip at the same source frames it would pick from the full video and
its views (and scores) are identical. Rewards that look at every frame say so
(:meth:`FramePlan.every_frame_of`); files for them are decoded whole, up to ``EVERY_FRAME_LIMIT_BYTES``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, Union

import torch

from .errors import RewardInputError, VideoReadError
from .transfer import to_device

#: Decoded bytes (frames x H x W x 3, uint8) a file may take for a reward that looks at every frame:
#: 1 GiB is about 170 frames at 1920x1080, 390 at 1280x720 and 870 at 854x480. Larger reads are
#: refused before decoding (scoring them as floats would need 5x that and more).
EVERY_FRAME_LIMIT_BYTES = 1 << 30
#: Views convert at most this many float bytes of full-size frames at a time (bounded memory on large frames).
FLOAT_CHUNK_BYTES = 64 << 20


@dataclass(frozen=True, eq=False)
class FramePlan:
    """Sorted distinct source ``indices`` (int64 [K]) of a ``num_frames``-frame video; ``every_frame`` when the
    reward looks at every frame whatever the length (so memory grows with it: see ``EVERY_FRAME_LIMIT_BYTES``)."""

    num_frames: int
    indices: torch.Tensor
    every_frame: bool = False

    @classmethod
    def of(cls, num_frames: int, *index_sets: torch.Tensor | Sequence[int], every_frame: bool = False) -> "FramePlan":
        """The union of ``index_sets`` (any order, repeats allowed) for a video of ``num_frames`` frames."""
        if num_frames < 1:
            raise RewardInputError(f"a frame plan needs a video of at least one frame, got num_frames={num_frames}.")
        parts = [torch.as_tensor(part, dtype=torch.int64).reshape(-1).cpu() for part in index_sets]
        indices = torch.unique(torch.cat(parts)) if parts else torch.zeros(0, dtype=torch.int64)
        if indices.numel() == 0:
            raise RewardInputError("a frame plan must name at least one frame.")
        if int(indices[0]) < 0 or int(indices[-1]) >= num_frames:
            raise RewardInputError(
                f"frame plan indices must lie in [0, {num_frames}) for a video of {num_frames} frames, "
                f"got values from {int(indices[0])} to {int(indices[-1])}."
            )
        return cls(num_frames, indices, every_frame)

    @classmethod
    def every_frame_of(cls, num_frames: int) -> "FramePlan":
        """The plan of a reward that looks at every frame."""
        return cls.of(num_frames, torch.arange(num_frames), every_frame=True)

    def union(self, *others: "FramePlan") -> "FramePlan":
        """Frames any of the plans looks at (a mixture's plan); all must be for the same video length."""
        for other in others:
            if other.num_frames != self.num_frames:
                raise ValueError(f"cannot join plans for {self.num_frames} and {other.num_frames} frames.")
        every = self.every_frame or any(other.every_frame for other in others)
        return FramePlan.of(self.num_frames, self.indices, *(other.indices for other in others), every_frame=every)

    def __len__(self) -> int:
        return int(self.indices.numel())

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FramePlan) and other.num_frames == self.num_frames
            and other.every_frame == self.every_frame and torch.equal(other.indices, self.indices)
        )

    def __repr__(self) -> str:
        shown = self.indices.tolist() if len(self) <= 12 else [*self.indices[:6].tolist(), "...", *self.indices[-3:].tolist()]
        every = ", every frame" if self.every_frame else ""
        return f"FramePlan(num_frames={self.num_frames}, {len(self)} frames {shown}{every})"

    @property
    def covers_every_frame(self) -> bool:
        """True when the clip of this plan is the whole video."""
        return len(self) == self.num_frames

    def contains(self, other: "FramePlan") -> bool:
        """Whether every frame ``other`` looks at is in this plan (same video length)."""
        if other.num_frames != self.num_frames:
            return False
        return bool(torch.isin(other.indices, self.indices).all())

    def positions(self, indices: torch.Tensor) -> torch.Tensor:
        """Where source frames ``indices`` sit in this plan's compact clip; an error names any frame it lacks."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        flat = indices.reshape(-1).cpu()
        found = torch.searchsorted(self.indices, flat).clamp_(max=len(self) - 1)
        missing = flat[self.indices[found] != flat]
        if missing.numel():
            raise RewardInputError(
                f"frames {missing.unique()[:8].tolist()} of this {self.num_frames}-frame video are not in the clip, which "
                f"holds only the planned frames ({self!r}); random views (frame_rng) and explicit frame indices "
                "outside the reward's plan need the full video: read it without frames= (read_video(path))."
            )
        return found.reshape(indices.shape).to(indices.device)


class HasFramePlan(Protocol):
    def frame_plan(self, num_frames: int) -> FramePlan: ...


#: What ``read_video(path, frames=...)`` accepts: a reward (anything with ``frame_plan``), a function of the
#: frame count returning a plan or indices, or explicit source frame indices.
FrameRequest = Union[HasFramePlan, Callable[[int], Union[FramePlan, torch.Tensor, Sequence[int]]], torch.Tensor, Sequence[int]]


def resolve_plan(request: FrameRequest, num_frames: int, source: object = "") -> FramePlan:
    """The plan ``request`` makes for the video ``source`` of ``num_frames`` frames."""
    if hasattr(request, "frame_plan"):
        plan = request.frame_plan(num_frames)
    elif callable(request):
        plan = request(num_frames)
    else:
        plan = request
    if not isinstance(plan, FramePlan):
        try:
            plan = FramePlan.of(num_frames, plan)
        except RewardInputError as error:
            raise VideoReadError(f"the frames requested from video {source} do not fit it: {error}") from None
    if plan.num_frames != num_frames:
        raise RewardInputError(
            f"the frame request gave a plan for {plan.num_frames} frames, but the video has {num_frames}; "
            "a plan function must return FramePlan.of(num_frames, ...) for the count it is given."
        )
    return plan


def check_decoded_size(plan: FramePlan, height: int, width: int, source: object) -> None:
    """Refuse a read for a reward that looks at every frame when it would decode more than ``EVERY_FRAME_LIMIT_BYTES``."""
    size = len(plan) * height * width * 3
    if plan.every_frame and size > EVERY_FRAME_LIMIT_BYTES:
        raise VideoReadError(
            f"video {source} has {plan.num_frames} frames of {width}x{height}: {size / 2**30:.1f} GiB decoded, and the "
            f"reward looks at every frame; reads for such rewards stop at {EVERY_FRAME_LIMIT_BYTES / 2**30:.1f} GiB "
            "(reward.frame_plan.EVERY_FRAME_LIMIT_BYTES). Trim or downscale the video, use a reward with a frame plan "
            "(e.g. imagereward with num_frames=16), or raise the limit in Python if the memory is there."
        )


@dataclass(frozen=True)
class SparseVideo:
    """The planned frames of one video: ``frames`` uint8 levels [K, 3, H, W] and the ``plan`` saying which source
    frames they are. Rewards take it in place of the full video (``model.score(clip, prompt)``)."""

    frames: torch.Tensor
    plan: FramePlan

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[1] != 3 or self.frames.shape[0] != len(self.plan):
            raise ValueError(f"a SparseVideo holds [K={len(self.plan)}, 3, H, W] frames, got {tuple(self.frames.shape)}.")

    @property
    def num_frames(self) -> int:
        """Frames of the source video (the clip holds ``len(plan)`` of them)."""
        return self.plan.num_frames

    def to_float(self) -> torch.Tensor:
        """The clip as float32 [K, 3, H, W] in [0, 1] (as ``read_video`` returns frames)."""
        return unit_pixels(self.frames)

    def full_video(self) -> torch.Tensor:
        """The whole video [T, 3, H, W] in [0, 1] when the plan covers every frame, else an error."""
        if not self.plan.covers_every_frame:
            raise ValueError(f"this clip holds {len(self.plan)} of {self.num_frames} frames, not the whole video.")
        return self.to_float()


def unit_pixels(frames: torch.Tensor) -> torch.Tensor:
    """uint8 levels as float32 in [0, 1] (``u8 / 255``, exactly as a full read computes them); floats unchanged."""
    return frames.float().div_(255) if frames.dtype == torch.uint8 else frames


def source_length(videos: torch.Tensor, frame_plan: FramePlan | None) -> int:
    """Frames of the source video: the plan's length for a compact clip, else ``videos.shape[1]``."""
    return frame_plan.num_frames if frame_plan is not None else videos.shape[1]


def clip_positions(indices: torch.Tensor, frame_plan: FramePlan | None) -> torch.Tensor:
    """Positions along dim 1 of ``videos`` of the source frames ``indices`` (themselves without a plan)."""
    return indices if frame_plan is None else frame_plan.positions(indices)


def take_frames(videos: torch.Tensor, indices: torch.Tensor, frame_plan: FramePlan | None = None) -> torch.Tensor:
    """Source frames ``indices`` of ``videos`` [B, T or K, 3, H, W] as [B, n, 3, H, W] (uint8 clips as [0, 1] floats)."""
    return unit_pixels(take_stored_frames(videos, indices, frame_plan))


def take_stored_frames(videos: torch.Tensor, indices: torch.Tensor, frame_plan: FramePlan | None = None) -> torch.Tensor:
    """As :func:`take_frames`, in the clip's own dtype (uint8 clips stay uint8 levels)."""
    positions = clip_positions(torch.as_tensor(indices, dtype=torch.int64), frame_plan)
    return videos.index_select(1, to_device(positions, videos.device))


def frame_chunks(indices: torch.Tensor, videos: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``indices`` split so each part of ``videos``' frames stays within ``FLOAT_CHUNK_BYTES`` as float32."""
    frame_bytes = 4 * videos.shape[0] * videos[0, 0].numel()
    return indices.split(max(1, FLOAT_CHUNK_BYTES // max(frame_bytes, 1)))


def check_clip(videos: torch.Tensor, frame_plan: FramePlan) -> torch.Tensor:
    """Shape checks for a compact clip [B, K, 3, H, W] of ``frame_plan``'s frames (uint8 levels or floats)."""
    if not isinstance(videos, torch.Tensor) or videos.ndim != 5 or videos.shape[2] != 3:
        shape = tuple(videos.shape) if isinstance(videos, torch.Tensor) else type(videos).__name__
        raise RewardInputError(f"a planned clip must be [B, K, 3, H, W], got {shape}.")
    if videos.shape[1] != len(frame_plan):
        raise RewardInputError(
            f"the clip holds {videos.shape[1]} frames but its plan names {len(frame_plan)} ({frame_plan!r}); pass the "
            "clip read with that plan (read_video(path, frames=reward))."
        )
    if videos.shape[0] == 0 or videos.shape[3] < 2 or videos.shape[4] < 2:
        raise RewardInputError(f"a planned clip needs at least one video of at least 2x2 pixels, got {tuple(videos.shape)}.")
    if videos.dtype != torch.uint8 and not videos.is_floating_point():
        raise RewardInputError(f"a planned clip holds uint8 levels or floats in [0, 1], got {videos.dtype}.")
    return videos
