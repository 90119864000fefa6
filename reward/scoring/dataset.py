"""Decoding videos in DataLoader worker processes; a bad file comes back as data, never as an exception.

Workers hand over uint8 frames: by default only the frames the reward's plan names (a
``SparseVideo``), else a reader's full video [T, H, W, 3] (a quarter of the float size through
shared memory and in the prefetch queue). ``reward_input`` turns a batch into what the reward takes
just before scoring.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from ..frame_plan import FramePlan, HasFramePlan, SparseVideo
from .inputs import VideoItem

#: ``reader(path) -> Tensor [T, H, W, 3]`` uint8 frames, or the planned frames as a ``SparseVideo``.
VideoReader = Callable[[str], "torch.Tensor | SparseVideo"]


@dataclass
class Decoded:
    """A worker's answer for one item: the video, or the reason it could not be used."""

    index: int
    item: VideoItem
    video: torch.Tensor | SparseVideo | None = None
    error: str | None = None


def default_reader(path: str) -> torch.Tensor:
    """The library's reader of whole videos (mp4, webm, gif, frame folders) as uint8 ``[T, H, W, 3]``."""
    from ..video.io import read_video_uint8

    return read_video_uint8(path)


@dataclass(frozen=True)
class PlannedReader:
    """Reads only the frames ``planner`` (a reward) looks at: ``reader(path) -> SparseVideo``."""

    planner: HasFramePlan

    def __call__(self, path: str) -> SparseVideo:
        from ..video.io import read_planned

        return read_planned(path, self.planner)


def shape_key(video: torch.Tensor | SparseVideo) -> tuple[int, ...]:
    """Videos with equal keys share a batch: a full video's shape, or a clip's source length and shape (the plan
    depends only on the length)."""
    if isinstance(video, SparseVideo):
        return (video.num_frames, *video.frames.shape)
    return tuple(video.shape)


def describe_video_problem(video: object) -> str | None:
    """Why a decoded value cannot be scored, or None when it is usable uint8 frames ``[T, H, W, 3]`` or a ``SparseVideo``."""
    if isinstance(video, SparseVideo):
        return None if video.frames.dtype == torch.uint8 else f"planned frames of dtype {video.frames.dtype}, not uint8"
    if not isinstance(video, torch.Tensor) or video.ndim != 4 or video.shape[-1] != 3:
        shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        return f"decoded to {shape}, not frames [T, H, W, 3]"
    if video.shape[0] == 0:
        return "the file holds no frames"
    if video.dtype != torch.uint8:
        return f"decoded to dtype {video.dtype}, not uint8 frames"
    return None


def as_reward_input(frames: list[torch.Tensor]) -> torch.Tensor:
    """Same-shape uint8 frames [T, H, W, 3] -> the reward batch [B, T, 3, H, W] in [0, 1]."""
    return torch.stack(frames).permute(0, 1, 4, 2, 3).float().div_(255)


def reward_input(videos: list[torch.Tensor | SparseVideo]) -> tuple[torch.Tensor, dict[str, FramePlan]]:
    """A same-key batch as ``(videos, options)`` for the reward: floats [B, T, 3, H, W], or the uint8 clips
    [B, K, 3, H, W] with ``frame_plan`` (one video is viewed, not copied)."""
    if not isinstance(videos[0], SparseVideo):
        return as_reward_input(videos), {}
    plan = videos[0].plan
    if any(video.plan != plan for video in videos[1:]):
        raise ValueError("clips batched together must share one frame plan; batch them by shape_key.")
    clips = videos[0].frames[None] if len(videos) == 1 else torch.stack([video.frames for video in videos])
    return clips, {"frame_plan": plan}


class VideoDataset(Dataset):
    """Items decoded by ``reader``; ``__getitem__`` returns a ``Decoded`` whatever happens to the file."""

    def __init__(self, items: Sequence[tuple[int, VideoItem]], reader: VideoReader | None = None):
        self.items = list(items)
        self.reader = reader or default_reader

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> Decoded:
        index, item = self.items[position]
        try:
            video = self.reader(item.path)
        except Exception as error:  # any failure of one file is that file's result, not the run's
            return Decoded(index, item, error=f"{type(error).__name__}: {error}")
        problem = describe_video_problem(video)
        if problem:
            return Decoded(index, item, error=problem)
        return Decoded(index, item, video=video if isinstance(video, SparseVideo) else video.contiguous())


def _as_is(decoded: Decoded) -> Decoded:
    return decoded


def decode_in_workers(
    items: Sequence[tuple[int, VideoItem]],
    *,
    reader: VideoReader | None = None,
    num_workers: int = 2,
    prefetch: int = 2,
) -> Iterator[Decoded]:
    """Yield ``Decoded`` in input order, decoded by ``num_workers`` processes (0 = in this process)
    that each keep ``prefetch`` videos ready ahead of the scorer."""
    loader = DataLoader(
        VideoDataset(items, reader),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_as_is,
        prefetch_factor=prefetch if num_workers > 0 else None,
    )
    yield from loader
