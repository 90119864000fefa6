"""Frame index samplers: which frames of a video a model looks at."""
from __future__ import annotations

import numpy as np
import torch

#: What ``rng`` may be for the DOVER sampler: ``None`` (deterministic), a seed, or a numpy generator.
FrameRng = None | int | np.random.RandomState | np.random.Generator


def uniform_frame_indices(num_frames: int, count: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``count`` indices spread evenly over ``num_frames`` (segment centres); repeats frames when short.

    Deterministic, so a reward stays a function of the video. Built on ``device`` (default CPU), so
    a model indexing GPU frames copies nothing from the host.
    """
    if num_frames < 1 or count < 1:
        raise ValueError(f"need at least one frame and one index, got num_frames={num_frames}, count={count}")
    positions = (torch.arange(count, dtype=torch.float64, device=device) + 0.5) * num_frames / count
    return positions.floor().clamp_(max=num_frames - 1).long()


def _as_rng(rng: FrameRng) -> np.random.RandomState | np.random.Generator | None:
    if rng is None or isinstance(rng, (np.random.RandomState, np.random.Generator)):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.RandomState(int(rng))
    raise TypeError(f"rng must be None, an int seed, or a numpy RandomState/Generator, got {type(rng).__name__}")


def dover_segment_starts(
    num_frames: int, *, fsize_t: int, fragments_t: int, frame_interval: int = 1, num_clips: int = 1,
    rng: FrameRng = None,
) -> torch.Tensor:
    """Start offset of each clip inside each segment, ``rnd_t`` [num_clips, fragments_t] of DOVER's sampler.

    A segment is ``num_frames // fragments_t`` frames long. When it is longer than the clip span
    (``fsize_t * frame_interval``) the offset is drawn uniformly from ``[0, length - span)`` per clip
    (one draw of ``fragments_t`` integers per clip, as the reference does); otherwise it is 0.
    With ``rng=None`` the offset is ``(length - span) // 2`` instead: the clip centred in its segment,
    always a value the random sampler can draw. An int ``rng`` seeds ``np.random.RandomState``, which
    replays the reference's ``np.random.seed(seed)`` + global draws exactly.
    """
    if min(num_frames, fsize_t, fragments_t, frame_interval, num_clips) < 1:
        raise ValueError(
            f"num_frames, fsize_t, fragments_t, frame_interval and num_clips must be >= 1, got {num_frames}, "
            f"{fsize_t}, {fragments_t}, {frame_interval}, {num_clips}"
        )
    generator = _as_rng(rng)
    length = num_frames // fragments_t
    room = length - fsize_t * frame_interval
    starts = np.zeros((num_clips, fragments_t), dtype=np.int64)
    if room > 0:
        if generator is None:
            starts[:] = room // 2
        else:
            draw = generator.randint if isinstance(generator, np.random.RandomState) else generator.integers
            for clip in range(num_clips):
                starts[clip] = draw(0, room, size=fragments_t)
    return torch.from_numpy(starts)


def dover_frame_indices(
    num_frames: int, *, fsize_t: int, fragments_t: int, frame_interval: int = 1, num_clips: int = 1,
    rng: FrameRng = None, starts: torch.Tensor | None = None,
) -> torch.Tensor:
    """DOVER's temporal sampler: ``[num_clips * fragments_t * fsize_t]`` indices, clip-major.

    ``index = (length * segment + start[clip, segment] + k * frame_interval) mod num_frames``: segments
    of ``num_frames // fragments_t`` frames, a clip of ``fsize_t`` frames per segment, wrapping
    around the end of short videos. ``starts`` (from :func:`dover_segment_starts`) overrides ``rng``.
    """
    if starts is None:
        starts = dover_segment_starts(
            num_frames, fsize_t=fsize_t, fragments_t=fragments_t, frame_interval=frame_interval,
            num_clips=num_clips, rng=rng,
        )
    if tuple(starts.shape) != (num_clips, fragments_t):
        raise ValueError(f"starts must have shape [num_clips, fragments_t] = [{num_clips}, {fragments_t}], "
                         f"got {tuple(starts.shape)}")
    segment_origins = torch.arange(fragments_t, dtype=torch.int64) * (num_frames // fragments_t)
    steps = torch.arange(fsize_t, dtype=torch.int64) * frame_interval
    indices = segment_origins[None, :, None] + starts.long()[:, :, None] + steps[None, None, :]
    return indices.reshape(-1) % num_frames
