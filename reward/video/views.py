"""DOVER's two views of a batch of videos, ready for the backbones, with the metadata to map scores back.

* technical: frames from ``num_clips`` segments, 7x7 fragments of 32x32 -> [B*num_clips, 3, clip_len, 224, 224]
* aesthetic: ``t_frag`` segments, frames resized to 224x224 -> [B, 3, clip_len, 224, 224]

(DOVER's sizes; fragment count, fragment size and the aesthetic side are arguments, for small models.)

Both are normalised on the 0-255 scale, differentiable with respect to the [0, 1] input, and
deterministic unless a random source is passed. With ``quantize=True`` (default) views of
``uint8 / 255`` videos are bit-identical to the public DOVER pipeline.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import RewardInputError
from ..transfer import to_device
from ..validation import require
from .fragments import (
    FRAGMENT_SIZE,
    NUM_FRAGMENTS,
    FragmentOffsets,
    batch_offsets,
    chunk_layout,
    fragment_grid,
    fragment_offsets,
    sample_fragments,
)
from .normalize import normalize_levels
from .quantize import view_dtype
from .resize import VIEW_SIZE, aesthetic_resize, upsample_scale
from .sampling import FrameRng, dover_frame_indices


@dataclass(frozen=True)
class TechnicalView:
    """The fragment view and where it came from.

    ``pixels`` [B*num_clips, 3, clip_len, 224, 224] (video-major, then clip); ``frame_indices``
    [num_clips*clip_len] into the input video (clip ``k`` uses ``frame_indices[k*clip_len:(k+1)*clip_len]``);
    ``grid_h``/``grid_w`` [7] and ``offsets`` ([B, 7, 7, chunks] each) locate fragment (i, j) of chunk c
    (frames ``c*aligned .. (c+1)*aligned - 1`` of the sampled clip sequence) at
    ``(grid_h[i] + offsets.h[b, i, j, c], grid_w[j] + offsets.w[b, i, j, c])`` in the frame the
    fragments were cut from, which is the input upsampled by ``scale`` (1.0: not upsampled).
    """

    pixels: torch.Tensor
    frame_indices: torch.Tensor
    grid_h: torch.Tensor
    grid_w: torch.Tensor
    offsets: FragmentOffsets
    clip_len: int
    num_clips: int
    aligned: int
    scale: float
    fragment_size: int = FRAGMENT_SIZE

    def fragment_boxes(self) -> torch.Tensor:
        """Input-pixel boxes ``(top, left, bottom, right)`` of every fragment: float [B, 7, 7, chunks, 4].

        Fragment (i, j) of chunk c fills view pixels ``[pi, pi+p) x [pj, pj+p)`` (``p = fragment_size``),
        so with 32-pixel fragments a 7x7 technical score map overlays these boxes directly.
        """
        grid_h, grid_w = (grid.to(self.offsets.h.device) for grid in (self.grid_h, self.grid_w))
        top = (grid_h[None, :, None, None] + self.offsets.h).double() / self.scale
        left = (grid_w[None, None, :, None] + self.offsets.w).double() / self.scale
        side = self.fragment_size / self.scale
        return torch.stack([top, left, top + side, left + side], dim=-1)


@dataclass(frozen=True)
class AestheticView:
    """The resized view ``pixels`` [B, 3, clip_len, 224, 224] and the ``frame_indices`` [clip_len] it shows."""

    pixels: torch.Tensor
    frame_indices: torch.Tensor


def _check_frame_indices(frame_indices: torch.Tensor, count: int, num_frames: int) -> torch.Tensor:
    frame_indices = torch.as_tensor(frame_indices, dtype=torch.int64).reshape(-1)
    if frame_indices.numel() != count:
        raise RewardInputError(f"frame_indices must hold {count} indices for this view, got {frame_indices.numel()}.")
    inside = (frame_indices >= 0) & (frame_indices < num_frames)
    message = f"frame_indices must lie in [0, {num_frames}) for videos of {num_frames} frames"
    if frame_indices.device.type != "cpu":
        require(inside, message + ".")
    elif not bool(inside.all()):
        raise RewardInputError(f"{message}, got values from {int(frame_indices.min())} to {int(frame_indices.max())}.")
    return frame_indices


def _select_frames(videos: torch.Tensor, frame_indices: torch.Tensor) -> torch.Tensor:
    """The sampled frames [B, n, 3, H, W], in at least float32."""
    return videos.to(view_dtype(videos)).index_select(1, to_device(frame_indices, videos.device))


def _to_clips(levels: torch.Tensor, num_clips: int) -> torch.Tensor:
    """Normalised [B, n*T, 3, h, w] levels -> [B*n, 3, T, h, w], clips of one video consecutive."""
    batch, frames, channels, height, width = levels.shape
    clip_len = frames // num_clips
    clips = normalize_levels(levels, channel_dim=2).reshape(batch, num_clips, clip_len, channels, height, width)
    return clips.permute(0, 1, 3, 2, 4, 5).reshape(batch * num_clips, channels, clip_len, height, width).contiguous()


def technical_view(
    videos: torch.Tensor, *, clip_len: int, num_clips: int, frame_interval: int, aligned: int,
    offsets: FragmentOffsets | tuple[torch.Tensor, torch.Tensor] | None = None,
    generator: torch.Generator | None = None, frame_indices: torch.Tensor | None = None,
    frame_rng: FrameRng = None, quantize: bool = True,
    fragments: int = NUM_FRAGMENTS, fragment_size: int = FRAGMENT_SIZE,
) -> TechnicalView:
    """DOVER's technical (fragment) view of ``videos`` [B, T, 3, H, W] in [0, 1].

    Frames: ``num_clips`` segments with one clip of ``clip_len`` frames every ``frame_interval``
    each (:func:`dover_frame_indices` with ``fsize_t=clip_len, fragments_t=num_clips``), centred in
    their segment unless ``frame_rng`` (seed or numpy generator) or explicit ``frame_indices`` are given.
    Fragments: offsets per ``aligned``-frame chunk of the ``num_clips*clip_len`` sampled frames, given
    as ``offsets`` ([7,7,chunks] or [B,7,7,chunks] each), drawn per video from ``generator``, or centred.
    ``fragments`` x ``fragments`` fragments of ``fragment_size`` pixels (DOVER: 7 of 32, a 224 view).
    """
    batch, num_frames, _, height, width = videos.shape
    count = num_clips * clip_len
    if frame_indices is None:
        frame_indices = dover_frame_indices(
            num_frames, fsize_t=clip_len, fragments_t=num_clips, frame_interval=frame_interval, rng=frame_rng
        )
    frame_indices = _check_frame_indices(frame_indices, count, num_frames)
    aligned, num_chunks = chunk_layout(count, aligned)
    if offsets is None:
        offsets = fragment_offsets(
            height, width, num_chunks, generator=generator, batch_size=None if generator is None else batch,
            num=fragments, patch=fragment_size,
        )
    offsets = batch_offsets(offsets, batch, num_chunks, num=fragments)
    levels = sample_fragments(
        _select_frames(videos, frame_indices), offsets, aligned=aligned, quantize=quantize, num=fragments, patch=fragment_size
    )
    return TechnicalView(
        pixels=_to_clips(levels, num_clips),
        frame_indices=frame_indices,
        grid_h=fragment_grid(height, num=fragments, patch=fragment_size),
        grid_w=fragment_grid(width, num=fragments, patch=fragment_size),
        offsets=offsets,
        clip_len=clip_len,
        num_clips=num_clips,
        aligned=aligned,
        scale=upsample_scale(height, width, min_side=fragments * fragment_size) or 1.0,
        fragment_size=fragment_size,
    )


def aesthetic_view(
    videos: torch.Tensor, *, clip_len: int, t_frag: int, frame_interval: int,
    frame_indices: torch.Tensor | None = None, frame_rng: FrameRng = None, quantize: bool = True,
    size: int = VIEW_SIZE,
) -> AestheticView:
    """DOVER's aesthetic view of ``videos`` [B, T, 3, H, W] in [0, 1]: frames resized to ``size`` x ``size`` (224).

    Frames: ``t_frag`` segments with ``clip_len // t_frag`` frames each (every ``frame_interval``),
    centred in their segment unless ``frame_rng`` or explicit ``frame_indices`` are given.
    """
    if clip_len % t_frag:
        raise RewardInputError(f"clip_len = {clip_len} must be a multiple of t_frag = {t_frag}.")
    num_frames = videos.shape[1]
    if frame_indices is None:
        frame_indices = dover_frame_indices(
            num_frames, fsize_t=clip_len // t_frag, fragments_t=t_frag, frame_interval=frame_interval, rng=frame_rng
        )
    frame_indices = _check_frame_indices(frame_indices, clip_len, num_frames)
    levels = aesthetic_resize(_select_frames(videos, frame_indices), size=size, quantize=quantize)
    return AestheticView(pixels=_to_clips(levels, 1), frame_indices=frame_indices)
