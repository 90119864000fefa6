"""Explaining a score: where (fragment and aesthetic maps) and when (per-frame curves) quality drops.

    >>> from reward.explain import explain_video
    >>> result = explain_video(reward.load("dover"), read_video("clip.mp4"), "a fox", "explain/")
    >>> result.png, result.mp4
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import torch

from ..base import VideoReward
from ..checkpoints import atomic_path
from ..errors import RewardInputError
from .maps import FrameMaps, frame_maps
from .render import Caption, contact_sheet, movie_frames, panel_frames, panel_size, shown_frames

__all__ = ["Explanation", "explain_video", "FrameMaps"]


@dataclass
class Explanation:
    """The files written, the video's scores, and the per-frame maps and curves they show."""

    png: Path
    mp4: Path
    scores: dict[str, float]
    maps: FrameMaps


def explain_video(
    model: VideoReward,
    video: torch.Tensor,
    prompt: str | None,
    out_dir: str | Path,
    *,
    name: str = "explain",
    reward_name: str | None = None,
    fps: float = 8,
) -> Explanation:
    """Score ``video`` [T, 3, H, W] with its score maps and write ``<name>.png`` and ``<name>.mp4`` into ``out_dir``.

    Needs a reward whose forward takes ``return_maps=True`` (``dover``, ``aigc-vqa`` and their tiny
    variants; PCQA where it reports per-frame contributions); see ``reward.explain.maps``.
    """
    from ..video.io import write_video

    if "return_maps" not in inspect.signature(model._forward).parameters:
        raise RewardInputError(
            f"{type(model).__name__} returns no score maps, so there is nothing to overlay; "
            "explain works with rewards that take return_maps=True (dover, aigc-vqa, their tiny variants)."
        )
    if not isinstance(video, torch.Tensor) or video.ndim != 4:
        raise RewardInputError("explain takes one video [T, 3, H, W] in [0, 1]; read files with reward.video.io.read_video.")
    output = model.score(video[None], [prompt] if prompt else None, return_maps=True)
    scores = {key: float(value[0]) for key, value in {"score": output.score, **output.components}.items()}
    height, width = video.shape[-2:]
    maps = frame_maps(output.extras, shown_frames(video.shape[0]), (height, width), panel_size(height, width))
    if not maps.curves:
        raise RewardInputError(f"{type(model).__name__} returned no score maps or per-frame scores to draw.")
    caption = Caption(reward_name or model.architecture, prompt, scores)
    pictures = panel_frames(video, maps.frames)
    out_dir = Path(out_dir)
    png, mp4 = out_dir / f"{name}.png", out_dir / f"{name}.mp4"
    with atomic_path(png) as tmp:
        contact_sheet(pictures, maps, caption).save(tmp, format="PNG")
    write_video(mp4, torch.from_numpy(movie_frames(pictures, maps, caption)), fps=fps)
    return Explanation(png, mp4, scores, maps)
