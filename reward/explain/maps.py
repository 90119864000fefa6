"""From a reward's diagnostics (``RewardOutput.extras``) to per-frame heat maps and curves.

The contract a reward meets to be explained, all for ``return_maps=True``:

* technical: ``technical_map`` [B, clips, T', 7, 7] (or [B, clips, 7, 7]), ``technical_frame_indices``
  [clips*clip_len] and ``fragment_boxes`` [B, 7, 7, chunks, 4] (top, left, bottom, right in input pixels);
* aesthetic: ``aesthetic_map`` [B, ..., T'', h, w] over the whole (resized) frame and ``aesthetic_frame_indices``;
* per-frame contributions: ``frame_scores`` [B, P] for the frames ``frame_score_indices`` [P].

Components without a map of their own name (all of them for a reward without maps, ``alignment``
for AIGC-VQA) get a ``frames_alone`` curve: frames scored one by one as images.

Sampled position ``p`` of a clip sequence of ``P`` frames belongs to clip ``p // clip_len``, to
time cell ``(p % clip_len) * T' // clip_len`` of its map, and to fragment chunk ``p * chunks // P``.
Every shown frame takes the values of the nearest sampled frame.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..frame_plan import FramePlan, take_frames
from ..video.sampling import uniform_frame_indices

#: How many shown frames ``frames_alone`` scores (evenly spread), and how many per forward pass.
FRAMES_ALONE_MAX = 16
FRAMES_ALONE_BATCH = 8
TECHNICAL_KEYS = ("technical_map", "technical_frame_indices", "fragment_boxes")
AESTHETIC_KEYS = ("aesthetic_map", "aesthetic_frame_indices")
FRAME_SCORE_KEYS = ("frame_scores", "frame_score_indices")
FRAME_SCORES_CURVE = "frame contribution"


@dataclass
class FrameMaps:
    """Heat maps at panel resolution (NaN where the model did not look) and curves, per shown frame."""

    frames: torch.Tensor
    technical: torch.Tensor | None = None
    aesthetic: torch.Tensor | None = None
    curves: dict[str, torch.Tensor] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)


def nearest_positions(sampled: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """For each frame index, the position in ``sampled`` of the closest sampled frame (first on ties)."""
    distance = (frames[:, None].long() - sampled[None, :].long()).abs()
    return distance.argmin(dim=1)


def values_per_position(score_map: torch.Tensor, positions: int) -> torch.Tensor:
    """[clips, cells, h, w] (or [clips, h, w]) -> [positions, h, w]: the map cell each sampled frame fed."""
    if score_map.ndim == 3:
        score_map = score_map[:, None]
    clips, cells = score_map.shape[:2]
    clip_len = positions // clips
    p = torch.arange(positions)
    return score_map[p // clip_len, (p % clip_len) * cells // clip_len]


def _has(extras: dict[str, Any], keys: tuple[str, ...]) -> bool:
    return all(extras.get(key) is not None for key in keys)


def technical_heat(
    extras: dict[str, Any], frames: torch.Tensor, frame_size: tuple[int, int], panel_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per shown frame: the fragment scores painted where the fragments were cut ([F, ph, pw], NaN elsewhere),
    and the mean fragment score (the technical curve)."""
    sampled = extras["technical_frame_indices"].cpu()
    values = values_per_position(extras["technical_map"][0].float().cpu(), len(sampled))  # [P, 7, 7]
    boxes = extras["fragment_boxes"][0].double().cpu()  # [7, 7, chunks, 4]
    chunks = boxes.shape[2]
    chunk = torch.arange(len(sampled)) * chunks // len(sampled)
    boxes = boxes.permute(2, 0, 1, 3)[chunk]  # [P, 7, 7, 4]
    nearest = nearest_positions(sampled, frames)
    painted = {int(p): _paint_fragments(values[p], boxes[p], frame_size, panel_size) for p in nearest.unique()}
    heat = torch.stack([painted[int(p)] for p in nearest])
    return heat, values[nearest].flatten(1).mean(1)


def _paint_fragments(
    values: torch.Tensor, boxes: torch.Tensor, frame_size: tuple[int, int], panel_size: tuple[int, int]
) -> torch.Tensor:
    """[7, 7] scores painted into their [7, 7, 4] input-pixel boxes on a panel: a panel pixel belongs to
    a box when its centre, mapped back to the input frame, lies inside it."""
    scale = torch.tensor([panel_size[0] / frame_size[0], panel_size[1] / frame_size[1]] * 2, dtype=torch.float64)
    edges = torch.ceil(boxes.reshape(-1, 4) * scale - 0.5).long().tolist()
    heat = torch.full(panel_size, float("nan"))
    for value, (top, left, bottom, right) in zip(values.reshape(-1).tolist(), edges):
        heat[max(top, 0):bottom, max(left, 0):right] = value
    return heat


def aesthetic_heat(extras: dict[str, Any], frames: torch.Tensor, panel_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per shown frame: the aesthetic map stretched over the whole frame (it scores the resized frame),
    and its mean (the aesthetic curve)."""
    sampled = extras["aesthetic_frame_indices"].cpu()
    score_map = extras["aesthetic_map"][0].float().cpu()
    score_map = score_map.reshape(1, -1, *score_map.shape[-2:])
    values = values_per_position(score_map, len(sampled))[nearest_positions(sampled, frames)]  # [F, h, w]
    heat = F.interpolate(values[:, None], size=panel_size, mode="bilinear", align_corners=False)[:, 0]
    return heat, values.flatten(1).mean(1)


def frame_maps(extras: dict[str, Any], frames: torch.Tensor, frame_size: tuple[int, int], panel_size: tuple[int, int]) -> FrameMaps:
    """Everything explain draws for one video (batch index 0) at the shown ``frames``."""
    maps = FrameMaps(frames=frames)
    if _has(extras, TECHNICAL_KEYS):
        maps.technical, maps.curves["technical map"] = technical_heat(extras, frames, frame_size, panel_size)
    if _has(extras, AESTHETIC_KEYS):
        maps.aesthetic, maps.curves["aesthetic map"] = aesthetic_heat(extras, frames, panel_size)
    if _has(extras, FRAME_SCORE_KEYS):
        sampled = extras["frame_score_indices"].cpu()
        scores = extras["frame_scores"][0].float().cpu()
        maps.curves[FRAME_SCORES_CURVE] = scores[nearest_positions(sampled, frames)]
    for name, heat in (("technical map", maps.technical), ("aesthetic map", maps.aesthetic)):
        if heat is not None:
            finite = heat[torch.isfinite(heat)]
            maps.ranges[name] = (float(finite.min()), float(finite.max()))
    return maps


def components_without_curves(maps: FrameMaps, components: Sequence[str]) -> list[str]:
    """Components no map curve stands for: a map covers the component of its name; reported per-frame
    scores cover them all."""
    if FRAME_SCORES_CURVE in maps.curves:
        return []
    mapped = {name for name, heat in (("technical", maps.technical), ("aesthetic", maps.aesthetic)) if heat is not None}
    return [name for name in components if name not in mapped]


def frames_alone(
    model: Any, video: torch.Tensor, frames: torch.Tensor, prompt: str | None, names: Sequence[str] | None = None,
    *, plan: FramePlan | None = None,
) -> dict[str, torch.Tensor]:
    """Components ``names`` (default: all, or the score when there are none) of at most 16 evenly spread
    shown frames, each scored alone as an image (T = 1); the other shown frames take the nearest one's.
    ``video`` is [T, 3, H, W], or ``plan``'s clip of it (which must hold the shown frames)."""
    scored = frames[uniform_frame_indices(len(frames), min(len(frames), FRAMES_ALONE_MAX))]
    parts = []
    for chunk in scored.split(FRAMES_ALONE_BATCH):
        images = take_frames(video[None], chunk, plan)[0][:, None]
        output = model.score(images, [prompt] * len(chunk) if prompt else None)
        parts.append(output.components or {"score": output.score})
    nearest = nearest_positions(scored, frames)
    return {
        f"{name} (frame alone)": torch.cat([part[name] for part in parts]).float().cpu()[nearest]
        for name in (names if names is not None else parts[0])
    }
