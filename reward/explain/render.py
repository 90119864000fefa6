"""Laying out an explanation: the contact-sheet PNG and the frame-by-frame mp4.

Sizes (``ph`` = panel height = 256 * H / W rounded to an even number, ``m`` = maps the reward has,
at least 1 (plain frames when it has none), ``c`` = curves): the PNG is ``min(4, frames) * 256``
wide and ``64 + m * ph + c * 56 + 18`` high (caption, one row of key frames per map, the chart);
every mp4 frame is ``m * 256`` wide and ``64 + ph + c * 56 + 18`` high, one per shown frame (all
frames up to 64, else 64 spread evenly).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..frame_plan import FramePlan, frame_chunks, take_frames
from ..video.resize import resize_frames
from ..video.sampling import uniform_frame_indices
from . import draw
from .maps import FrameMaps

PANEL_WIDTH = 256
CAPTION_HEIGHT = 64
CURVE_ROW_HEIGHT = 56
KEY_FRAMES = 4
#: Longer videos are shown at this many evenly spread frames.
MAX_SHOWN_FRAMES = 64


@dataclass
class Caption:
    """What the caption says: the prompt and every score, under the reward's name."""

    reward_name: str
    prompt: str | None
    scores: dict[str, float]

    def image(self, width: int) -> Image.Image:
        return draw.caption(width, CAPTION_HEIGHT, self.prompt, self.scores, self.reward_name)


def panel_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) of one frame panel: 256 wide, the frame's aspect, an even height (for H.264)."""
    return max(2, 2 * round(PANEL_WIDTH * height / width / 2)), PANEL_WIDTH


def shown_frames(num_frames: int) -> torch.Tensor:
    return uniform_frame_indices(num_frames, min(num_frames, MAX_SHOWN_FRAMES))


def panel_frames(video: torch.Tensor, frames: torch.Tensor, plan: FramePlan | None = None) -> np.ndarray:
    """The shown source ``frames`` of ``video`` [T, 3, H, W] (or ``plan``'s clip of it) resized to panel size
    (antialiased, a few full-size frames at a time): uint8 [F, ph, pw, 3]."""
    size = panel_size(*video.shape[-2:])
    batch = video[None]
    small = torch.cat([resize_frames(take_frames(batch, part, plan)[0].float(), size) for part in frame_chunks(frames, batch)])
    return (small.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def _panels(maps: FrameMaps, position: int, frame: np.ndarray) -> list[np.ndarray]:
    number = int(maps.frames[position])
    panels = []
    for name, heat in (("technical map", maps.technical), ("aesthetic map", maps.aesthetic)):
        if heat is not None:
            panels.append(draw.label(draw.overlay(frame, heat[position], maps.ranges[name]), f"{name}, frame {number}"))
    return panels or [draw.label(frame, f"frame {number}")]


def _stack(parts: list[Image.Image | np.ndarray]) -> Image.Image:
    images = [part if isinstance(part, Image.Image) else Image.fromarray(part) for part in parts]
    sheet = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), draw.BACKGROUND)
    top = 0
    for image in images:
        sheet.paste(image, (0, top))
        top += image.height
    return sheet


def contact_sheet(pictures: np.ndarray, maps: FrameMaps, caption: Caption) -> Image.Image:
    """Key frames (columns) x maps (rows), then the chart with the key frames marked, under the caption.
    ``pictures`` are the shown frames at panel size (``panel_frames``)."""
    keys = uniform_frame_indices(len(maps.frames), min(KEY_FRAMES, len(maps.frames)))
    columns = [_panels(maps, int(k), pictures[int(k)]) for k in keys]
    rows = [np.concatenate([column[r] for column in columns], axis=1) for r in range(len(columns[0]))]
    width = rows[0].shape[1]
    curves = draw.chart(width, CURVE_ROW_HEIGHT, maps.curves, maps.frames, marks=[int(k) for k in keys])
    return _stack([caption.image(width), *rows, curves])


def movie_frames(pictures: np.ndarray, maps: FrameMaps, caption: Caption) -> np.ndarray:
    """uint8 [F, H, W, 3]: for every shown frame its overlays side by side and the chart with a cursor."""
    frames, title = [], None
    for position, picture in enumerate(pictures):
        row = np.concatenate(_panels(maps, position, picture), axis=1)
        curves = draw.chart(row.shape[1], CURVE_ROW_HEIGHT, maps.curves, maps.frames, cursor=position)
        title = title or caption.image(row.shape[1])
        frames.append(np.asarray(_stack([title, row, curves])))
    return np.stack(frames)
