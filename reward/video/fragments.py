"""DOVER's spatial fragments: a grid of small patches stitched into one view, gathered in one op.

A video [B, T, 3, H, W] becomes [B, T, 3, 224, 224]: a 7x7 grid of 32x32 patches whose positions
move by an offset per grid cell that is shared by ``aligned`` consecutive frames (a chunk).
Built from index tensors and a single gather, so it is vectorised and differentiable: gradients
reach exactly the sampled pixels.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..errors import RewardInputError
from ..transfer import to_device
from ..validation import require
from .quantize import to_levels
from .resize import upsample_scale, upsample_small_video

#: Fragments per side and fragment side in pixels (DOVER: 7x7 fragments of 32x32 -> 224x224).
NUM_FRAGMENTS = 7
FRAGMENT_SIZE = 32


class FragmentOffsets(NamedTuple):
    """Offsets of every fragment inside its grid cell, per temporal chunk.

    ``h`` and ``w`` are int64 ``[7, 7, chunks]`` (shared by the batch) or ``[B, 7, 7, chunks]``;
    entry ``[..., i, j, c]`` moves fragment (row i, column j) in chunk c.
    """

    h: torch.Tensor
    w: torch.Tensor


def fragment_grid(
    size: int, *, num: int = NUM_FRAGMENTS, patch: int = FRAGMENT_SIZE, device: torch.device | str | None = None
) -> torch.Tensor:
    """Grid origins ``min(size // num * i, size - patch)`` for i < num (int64 [num], on ``device``; default CPU).

    Sides shorter than ``patch`` clamp the origin at 0 (the reference has no rule for them).
    """
    origins = torch.arange(num, dtype=torch.int64, device=device) * (size // num)
    return origins.clamp(max=max(size - patch, 0))


def fragment_offset_range(size: int, *, num: int = NUM_FRAGMENTS, patch: int = FRAGMENT_SIZE) -> int:
    """Number of positions a fragment can take in its cell (offsets lie in [0, range)); 0 if it cannot move."""
    return max(size // num - patch, 0)


def fragment_offsets(
    height: int, width: int, num_chunks: int, *, generator: torch.Generator | None = None,
    batch_size: int | None = None, num: int = NUM_FRAGMENTS, patch: int = FRAGMENT_SIZE,
) -> FragmentOffsets:
    """Offsets for a ``height x width`` video with ``num_chunks`` chunks: centred, or drawn from ``generator``.

    Without a generator every fragment sits in the middle of its possible range (deterministic).
    With one, ``h`` then ``w`` are drawn as ``randint(range, [7, 7, chunks])`` on the generator's device
    (each only when its range is non-empty), which replays the reference after ``torch.manual_seed``. ``batch_size``
    gives ``[B, 7, 7, chunks]``: one such draw per video in turn, as the reference would make them
    for B videos read one after another (so video 0 replays a single-video draw).
    """
    shape = (num, num, num_chunks)
    device = None if generator is None else generator.device  # a GPU generator's draws stay on the GPU

    def along(size: int) -> torch.Tensor:
        room = fragment_offset_range(size, num=num, patch=patch)
        if room == 0:
            return torch.zeros(shape, dtype=torch.int64, device=device)
        if generator is None:
            return torch.full(shape, room // 2, dtype=torch.int64)
        return torch.randint(room, shape, generator=generator, dtype=torch.int64, device=device)

    def one_video() -> tuple[torch.Tensor, torch.Tensor]:
        offsets_h = along(height)  # drawn before w, as the reference does
        return offsets_h, along(width)

    if batch_size is None:
        return FragmentOffsets(*one_video())
    draws = [one_video() for _ in range(batch_size)]
    return FragmentOffsets(torch.stack([h for h, _ in draws]), torch.stack([w for _, w in draws]))


def chunk_layout(frames: int, aligned: int) -> tuple[int, int]:
    """``(aligned, chunks)`` for a clip of ``frames`` frames; a single frame is its own chunk."""
    aligned = 1 if frames == 1 else aligned
    if aligned < 1 or frames % aligned:
        raise RewardInputError(f"the sampled clip ({frames} frames) must be a multiple of aligned = {aligned} frames.")
    return aligned, frames // aligned


def batch_offsets(
    offsets: FragmentOffsets | tuple[torch.Tensor, torch.Tensor], batch: int, num_chunks: int, *,
    num: int = NUM_FRAGMENTS,
) -> FragmentOffsets:
    """Offsets as int64 [B, num, num, chunks] each (shared ones expanded), or an error naming the shape."""
    batched = []
    for name, value in zip("hw", offsets):
        value = torch.as_tensor(value, dtype=torch.int64)
        value = value[None] if value.ndim == 3 else value
        if value.ndim != 4 or tuple(value.shape[1:]) != (num, num, num_chunks) or value.shape[0] not in (1, batch):
            raise RewardInputError(
                f"fragment offsets {name} must have shape [{num}, {num}, {num_chunks}] or "
                f"[{batch}, {num}, {num}, {num_chunks}] (chunks = frames // aligned), got {tuple(value.shape)}."
            )
        batched.append(value.expand(batch, num, num, num_chunks))
    return FragmentOffsets(*batched)


def check_fragments_inside(
    grid_h: torch.Tensor, grid_w: torch.Tensor, offsets: FragmentOffsets, *, frame_size: tuple[int, int],
    patch: int = FRAGMENT_SIZE,
) -> None:
    """Refuse offsets ([B, num, num, chunks] each, on the device of the grids) that move a fragment outside
    ``frame_size``: a flat gather would silently wrap it into the next row. Immediate on the CPU, a
    device-side assertion elsewhere (``validation.require``)."""
    height, width = frame_size
    for name, first, size in (
        ("h", grid_h[None, :, None, None] + offsets.h, height),
        ("w", grid_w[None, None, :, None] + offsets.w, width),
    ):
        require(
            (first >= 0) & (first + patch <= size),
            f"fragment offsets {name} move fragments outside the {height}x{width} frame; offsets must be "
            "non-negative and keep grid + offset + fragment size inside the frame, as fragment_offsets() draws them.",
        )


def fragment_pixel_index(
    grid_h: torch.Tensor, grid_w: torch.Tensor, offsets: FragmentOffsets, *, frame_size: tuple[int, int],
    patch: int = FRAGMENT_SIZE,
) -> torch.Tensor:
    """Flat pixel index ``row * width + col`` of every view pixel: int64 [B, chunks, (num*patch)**2].

    ``offsets`` are [B, num, num, chunks] each, on the device of the grids; the view is laid out
    fragment row, pixel row, fragment column, pixel column. Offsets must keep every fragment
    inside ``frame_size`` (:func:`check_fragments_inside`).
    """
    width = frame_size[1]
    steps = torch.arange(patch, dtype=torch.int64, device=offsets.h.device)
    rows = grid_h[None, :, None, None, None] + offsets.h[..., None] + steps  # [B, i, j, c, y]
    cols = grid_w[None, None, :, None, None] + offsets.w[..., None] + steps  # [B, i, j, c, x]
    flat = rows[..., :, None] * width + cols[..., None, :]  # [B, i, j, c, y, x]
    batch, num, _, chunks = offsets.h.shape
    return flat.permute(0, 3, 1, 4, 2, 5).reshape(batch, chunks, (num * patch) ** 2)


def sample_fragments(
    videos: torch.Tensor, offsets: FragmentOffsets | tuple[torch.Tensor, torch.Tensor] | None = None, *,
    aligned: int, generator: torch.Generator | None = None, quantize: bool = True,
    num: int = NUM_FRAGMENTS, patch: int = FRAGMENT_SIZE,
) -> torch.Tensor:
    """Fragments of [B, T, 3, H, W] in [0, 1]: returns 0-255 levels [B, T, 3, num*patch, num*patch].

    Chunks are ``aligned`` consecutive frames (``T % aligned == 0``; T = 1 uses aligned = 1).
    ``offsets`` as from :func:`fragment_offsets`; when omitted they come from
    ``fragment_offsets(..., generator=generator)`` (centred without a generator). Videos whose
    short side is below ``num * patch`` are first upsampled (see ``resize.upsample_small_video``);
    grids and offsets still use the original H, W, as in the reference. ``quantize`` snaps the
    output to uint8 levels with a straight-through estimator (exact reference parity).
    """
    batch, frames, channels, height, width = videos.shape
    aligned, num_chunks = chunk_layout(frames, aligned)
    if offsets is None:
        offsets = fragment_offsets(height, width, num_chunks, generator=generator, num=num, patch=patch)
    offsets = batch_offsets(offsets, batch, num_chunks, num=num)
    scale = upsample_scale(height, width, min_side=num * patch)
    source = videos if scale is None else upsample_small_video(videos, scale, quantize=quantize)
    frame_size = tuple(source.shape[-2:])
    here = offsets.h.device  # the check runs where the offsets were drawn or given: on the host, no wait
    grids = [fragment_grid(size, num=num, patch=patch, device=here) for size in (height, width)]
    check_fragments_inside(*grids, offsets, frame_size=frame_size, patch=patch)
    offsets = FragmentOffsets(*(to_device(o, videos.device) for o in offsets))
    grids = [to_device(grid, videos.device) for grid in grids]
    index = fragment_pixel_index(*grids, offsets, frame_size=frame_size, patch=patch)
    side = num * patch
    chunked = source.reshape(batch, num_chunks, aligned, channels, -1)
    index = index[:, :, None, None, :].expand(batch, num_chunks, aligned, channels, side * side)
    patches = torch.gather(chunked, -1, index).reshape(batch, frames, channels, side, side)
    return to_levels(patches, quantize=quantize) if scale is None else patches
