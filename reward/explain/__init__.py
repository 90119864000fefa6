"""Explaining a score: where (fragment and aesthetic maps) and when (per-frame curves) quality drops.

    >>> from reward.explain import explain_video
    >>> result = explain_video(reward.load("dover"), read_video("clip.mp4"), "a fox", "explain/")
    >>> result.png, result.mp4, result.html
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import torch

from ..base import VideoReward
from ..checkpoints import atomic_path
from ..errors import RewardInputError
from .maps import FrameMaps, components_without_curves, frame_maps, frames_alone
from .render import Caption, contact_sheet, movie_frames, panel_frames, panel_size, shown_frames

__all__ = ["Explanation", "explain_video", "FrameMaps"]


@dataclass
class Explanation:
    """The files written (the page ``html`` shows the other two), the video's scores, and the
    per-frame maps and curves they show."""

    png: Path
    mp4: Path
    scores: dict[str, float]
    maps: FrameMaps
    html: Path


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
    """Score ``video`` [T, 3, H, W] and write ``<name>.png``, ``<name>.mp4`` and ``<name>.html`` (a
    page showing both under the caption) into ``out_dir``.

    Rewards whose forward takes ``return_maps=True`` (``dover``, ``aigc-vqa`` and their tiny
    variants) get their maps drawn (see ``reward.explain.maps``); components without a map (AIGC-VQA's
    alignment; every component of PCQA, ImageReward, ...) get per-frame curves from scoring frames
    alone as images (T = 1).
    """
    from ..gallery import write_explain_page
    from ..video.io import write_video

    if not isinstance(video, torch.Tensor) or video.ndim != 4:
        raise RewardInputError("explain takes one video [T, 3, H, W] in [0, 1]; read files with reward.video.io.read_video.")
    prompts = [prompt] if prompt else None
    has_maps = "return_maps" in inspect.signature(model._forward).parameters
    output = model.score(video[None], prompts, **({"return_maps": True} if has_maps else {}))
    scores = {key: float(value[0]) for key, value in {"score": output.score, **output.components}.items()}
    height, width = video.shape[-2:]
    maps = frame_maps(output.extras, shown_frames(video.shape[0]), (height, width), panel_size(height, width))
    uncovered = components_without_curves(maps, list(output.components))
    if uncovered or not maps.curves:
        maps.curves.update(frames_alone(model, video, maps.frames, prompt, uncovered or None))
    caption = Caption(reward_name or model.architecture, prompt, scores)
    pictures = panel_frames(video, maps.frames)
    out_dir = Path(out_dir)
    png, mp4 = out_dir / f"{name}.png", out_dir / f"{name}.mp4"
    with atomic_path(png) as tmp:
        contact_sheet(pictures, maps, caption).save(tmp, format="PNG")
    write_video(mp4, torch.from_numpy(movie_frames(pictures, maps, caption)), fps=fps)
    html = write_explain_page(
        out_dir / f"{name}.html", png=png, mp4=mp4, scores=scores, prompt=prompt, reward_name=caption.reward_name
    )
    return Explanation(png, mp4, scores, maps, html)
