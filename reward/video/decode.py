"""Decoding only the planned frames of a video file with PyAV.

1. **Count**: one pass over the packets (read, not decoded) gives every frame's timestamp and the
   keyframes; the frame count is the number of packets. Where the header declares another count
   (a cut file, a hand-edited or broken header) the frames are counted by decoding them instead,
   so the count is always the one a full read gives.
2. **Plan**: the reward's plan for that count says which frames to keep.
3. **Decode**: frames are decoded in order and dropped without RGB conversion, except where the
   next kept frame lies past a keyframe at least ``SEEK_MIN_SKIP`` frames ahead: there the reader
   seeks to that keyframe. Frames are identified by their rank among the timestamps, and every
   decoded frame must come in display order from the keyframe on; if one does not, or the stream
   ends before a planned frame, the frames are counted by decoding and read again in order.
"""
from __future__ import annotations

import bisect
import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import VideoReadError
from ..frame_plan import FramePlan, FrameRequest, SparseVideo, check_decoded_size, resolve_plan

if TYPE_CHECKING:
    import av

#: Seek only when that skips decoding at least this many frames (a seek flushes the decoder and its threads).
SEEK_MIN_SKIP = 24


class _Recount(Exception):
    """The packets do not match the decoded frames: count the frames by decoding them instead."""


@dataclass(frozen=True)
class StreamTable:
    """Presentation timestamps of every frame in display order, and the display ranks of the keyframes."""

    pts: list[int]
    keyframes: list[int]
    seekable: bool
    declared: int = 0

    @property
    def num_frames(self) -> int:
        return len(self.pts)

    @property
    def trusted(self) -> bool:
        """The packet count agrees with the header's frame count (or the header gives none)."""
        return self.declared in (0, self.num_frames)

    def keyframe_at_or_before(self, rank: int) -> int | None:
        position = bisect.bisect_right(self.keyframes, rank)
        return self.keyframes[position - 1] if position else None


class ClipBuffer:
    """The compact clip being filled: uint8 [K, 3, H, W], one slot per planned frame."""

    def __init__(self, plan: FramePlan, source: object):
        self.plan = plan
        self.source = source
        self.slot = {int(index): position for position, index in enumerate(plan.indices.tolist())}
        self.frames: torch.Tensor | None = None
        self.filled = 0

    def wants(self, index: int) -> bool:
        return index in self.slot

    def put(self, index: int, rgb: np.ndarray) -> None:
        """Store source frame ``index`` given as uint8 [H, W, 3]."""
        if self.frames is None:
            check_decoded_size(self.plan, *rgb.shape[:2], self.source)
            self.frames = torch.empty((len(self.plan), 3, *rgb.shape[:2]), dtype=torch.uint8)
        elif tuple(rgb.shape[:2]) != tuple(self.frames.shape[-2:]):
            raise VideoReadError(
                f"video {self.source}: frame {index} has size {rgb.shape[:2]}, earlier frames {tuple(self.frames.shape[-2:])}; "
                "a video must keep one frame size (re-encode it at one size)."
            )
        self.frames[self.slot[index]].copy_(torch.from_numpy(rgb).permute(2, 0, 1))
        self.filled += 1

    def video(self) -> SparseVideo:
        if self.frames is None or self.filled != len(self.plan):
            raise VideoReadError(f"video {self.source}: {len(self.plan) - self.filled} planned frames were not decoded.")
        return SparseVideo(self.frames, self.plan)


@contextlib.contextmanager
def open_video(path: Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """The container and its first video stream, decoded with frame and slice threads."""
    import av  # on first use: scoring tensors (a GPU training loop, say) needs no FFmpeg

    try:
        container = av.open(str(path))
    except av.error.EOFError as error:
        raise VideoReadError(f"video {path} ends before its first frame: it is empty (zero frames) or truncated.") from error
    with container:
        if not container.streams.video:
            audio = " (it holds only audio)" if container.streams.audio else ""
            raise VideoReadError(f"video {path} has no video stream{audio} (zero frames); a reward needs at least one frame.")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield container, stream


def stream_table(path: Path) -> StreamTable:
    """Count the frames of ``path`` from its packets: timestamps in display order and keyframe ranks."""
    entries: list[tuple[int | None, bool]] = []
    with open_video(path) as (container, stream):
        declared = stream.frames
        for packet in container.demux(stream):
            if packet.size and not packet.is_discard:  # flush packets and edit-list discards give no frame
                entries.append((packet.pts, packet.is_keyframe))
    stamps = [pts for pts, _ in entries]
    seekable = None not in stamps and len(set(stamps)) == len(stamps)
    if not seekable:
        return StreamTable(list(range(len(entries))), [], False, declared)
    order = sorted(range(len(entries)), key=lambda i: stamps[i])
    keyframes = [rank for rank, i in enumerate(order) if entries[i][1]]
    return StreamTable([stamps[i] for i in order], keyframes, True, declared)


def decode_planned(path: Path, request: FrameRequest, *, max_frames: int | None = None) -> SparseVideo:
    """The frames ``request`` plans for ``path`` (a container PyAV reads), as a :class:`SparseVideo`.

    ``max_frames`` reads the video as if it ended after that many frames (as ``read_video`` does).
    """
    table = stream_table(path)
    if table.trusted:
        plan = _plan(path, request, table.num_frames, max_frames)
        try:
            return _decode_with_seeks(path, table, plan) if table.seekable else _decode_in_order(path, plan, recount=True)
        except _Recount:
            pass
    with open_video(path) as (container, stream):
        count = sum(1 for _ in itertools.islice(_frames(container, stream), max_frames))
    return _decode_in_order(path, _plan(path, request, count, max_frames))


def _plan(path: Path, request: FrameRequest, count: int, max_frames: int | None) -> FramePlan:
    count = min(count, max_frames or count)
    if count == 0:
        raise VideoReadError(f"video {path} has no decodable frames; a reward needs at least one frame.")
    return resolve_plan(request, count, path)


def _runs(table: StreamTable, wanted: list[int]) -> list[tuple[int | None, list[int]]]:
    """Planned frames grouped into runs decoded in one go; a run starts at a keyframe to seek to (None: the file start)."""
    runs: list[tuple[int | None, list[int]]] = [(None, [])]
    decoded_to = -1
    for index in wanted:
        keyframe = table.keyframe_at_or_before(index)
        if keyframe is not None and keyframe - decoded_to - 1 >= SEEK_MIN_SKIP:
            runs.append((keyframe, []))
        runs[-1][1].append(index)
        decoded_to = index
    return [run for run in runs if run[1]]


def _decode_with_seeks(path: Path, table: StreamTable, plan: FramePlan) -> SparseVideo:
    rank_of = {pts: rank for rank, pts in enumerate(table.pts)}
    buffer = ClipBuffer(plan, path)
    with open_video(path) as (container, stream):
        for start, wanted in _runs(table, plan.indices.tolist()):
            if start is not None:
                container.seek(table.pts[start], stream=stream, backward=True)
            first = expected = start or 0
            last = wanted[-1]
            for frame in _frames(container, stream):
                rank = rank_of.get(frame.pts)
                if rank is None:
                    raise _Recount
                if rank < first and expected == first:
                    continue  # leading pictures of an open GOP, or a seek that landed on an earlier keyframe
                if rank != expected:
                    raise _Recount
                expected += 1
                if buffer.wants(rank):
                    buffer.put(rank, frame.to_ndarray(format="rgb24"))
                if rank == last:
                    break
            else:
                raise _Recount  # the stream ended before a planned frame
    return buffer.video()


def _decode_in_order(path: Path, plan: FramePlan, *, recount: bool = False) -> SparseVideo:
    """Index frames by decoding order from the start, keeping the planned ones; a stream that ends before the last
    one raises ``_Recount`` with ``recount`` (the count came from packets), else a ``VideoReadError``."""
    buffer = ClipBuffer(plan, path)
    last = int(plan.indices[-1])
    with open_video(path) as (container, stream):
        index = -1
        for index, frame in enumerate(_frames(container, stream)):
            if buffer.wants(index):
                buffer.put(index, frame.to_ndarray(format="rgb24"))
            if index == last:
                break
        else:
            if recount:
                raise _Recount
            _ended_early(path, index + 1, plan.num_frames)
    return buffer.video()


def _frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    for packet in container.demux(stream):
        yield from packet.decode()


def _ended_early(path: Path, decoded: int, expected: int) -> None:
    raise VideoReadError(
        f"video {path} ends early: its stream lists {expected} frames but decoding stopped after frame {decoded - 1}; "
        "the file is truncated or damaged. Re-encode it (e.g. ffmpeg -i in.mp4 -c:v libx264 out.mp4) or remux what is left."
    )
