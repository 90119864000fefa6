"""Pillow drawing for explanations: heat colours, overlays, the caption and the per-frame chart."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

#: Heat colours from the lowest value of a map (red) through the middle (pale yellow) to the highest (green).
HEAT_STOPS = np.array([[178, 24, 43], [253, 219, 131], [26, 152, 80]], dtype=np.float64)
#: Opacity of the heat colour over the frame, and how much unseen regions (no fragment) are darkened.
HEAT_ALPHA = 0.55
UNSEEN_DIM = 0.45
CURVE_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
GREY = (150, 150, 150)


def font(size: int = 13) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def heat_colours(normalised: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB along ``HEAT_STOPS`` (piecewise linear)."""
    position = np.clip(normalised, 0, 1) * (len(HEAT_STOPS) - 1)
    low = np.minimum(np.floor(position).astype(int), len(HEAT_STOPS) - 2)
    weight = (position - low)[..., None]
    return (HEAT_STOPS[low] * (1 - weight) + HEAT_STOPS[low + 1] * weight).round().astype(np.uint8)


def overlay(frame: np.ndarray, heat: torch.Tensor, value_range: tuple[float, float]) -> np.ndarray:
    """Blend a heat map (NaN = not looked at: darkened) over a uint8 [H, W, 3] frame of the same size."""
    low, high = value_range
    values = heat.numpy().astype(np.float64)
    seen = np.isfinite(values)
    normalised = (np.nan_to_num(values, nan=low) - low) / (high - low) if high > low else np.full(values.shape, 0.5)
    base = frame.astype(np.float64)
    blended = np.where(seen[..., None], base * (1 - HEAT_ALPHA) + heat_colours(normalised) * HEAT_ALPHA, base * UNSEEN_DIM)
    return blended.round().astype(np.uint8)


def label(image: np.ndarray, text: str) -> np.ndarray:
    """``text`` in a dark box at the top-left corner of a uint8 image."""
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    left, top, right, bottom = draw.textbbox((4, 2), text, font=font(12))
    draw.rectangle((0, 0, right + 4, bottom + 3), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255), font=font(12))
    return np.asarray(picture)


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, size: int) -> str:
    if draw.textlength(text, font=font(size)) <= width:
        return text
    while text and draw.textlength(text + "...", font=font(size)) > width:
        text = text[:-1]
    return text + "..."


def caption(width: int, height: int, prompt: str | None, scores: dict[str, float], reward_name: str) -> Image.Image:
    """The prompt (shortened to fit) and every score of the video."""
    picture = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    title = f"prompt: {prompt}" if prompt else "(no prompt)"
    draw.text((8, 6), _fit(draw, title, width - 16, 15), fill=INK, font=font(15))
    numbers = "   ".join(f"{name} {value:.4f}" for name, value in scores.items())
    draw.text((8, 30), _fit(draw, f"{reward_name}:  {numbers}", width - 16, 13), fill=INK, font=font(13))
    legend = "maps: red = lower, green = higher (each map's own range); dark = not seen by the technical branch"
    draw.text((8, height - 18), _fit(draw, legend, width - 16, 11), fill=GREY, font=font(11))
    return picture


def chart(
    width: int, row_height: int, curves: dict[str, torch.Tensor], frame_numbers: torch.Tensor, *,
    marks: Sequence[int] = (), cursor: int | None = None,
) -> Image.Image:
    """One row per curve (own y-range, labelled min/max) over the shown frames; ``marks`` and ``cursor``
    are positions in ``frame_numbers`` drawn as grey ticks and a black line."""
    axis = 18
    picture = Image.new("RGB", (width, row_height * max(len(curves), 1) + axis), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    left, right = 8, width - 8
    count = len(frame_numbers)

    def x_of(position: int) -> float:
        return left + (right - left) * (position / (count - 1) if count > 1 else 0.5)

    for row, (name, values) in enumerate(curves.items()):
        top = row * row_height
        low, high = float(values.min()), float(values.max())
        heights = (values.double() - low) / (high - low) if high > low else torch.full_like(values.double(), 0.5)
        draw.line([(left, top + row_height - 1), (right, top + row_height - 1)], fill=(225, 225, 225))
        points = [(x_of(i), top + row_height - 6 - (row_height - 24) * float(h)) for i, h in enumerate(heights)]
        colour = CURVE_COLOURS[row % len(CURVE_COLOURS)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        else:
            draw.ellipse([points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2], fill=colour)
        draw.text((left + 2, top + 2), f"{name}  (min {low:.3f}, max {high:.3f})", fill=colour, font=font(11))
    bottom = picture.height - axis
    for mark in marks:
        draw.line([(x_of(mark), bottom - 6), (x_of(mark), bottom)], fill=GREY, width=2)
    if cursor is not None:
        draw.line([(x_of(cursor), 0), (x_of(cursor), bottom)], fill=INK, width=1)
    first, last = int(frame_numbers[0]), int(frame_numbers[-1])
    draw.text((left, bottom + 3), f"frame {first}", fill=GREY, font=font(11))
    end = f"frame {last}"
    draw.text((right - draw.textlength(end, font=font(11)), bottom + 3), end, fill=GREY, font=font(11))
    return picture
