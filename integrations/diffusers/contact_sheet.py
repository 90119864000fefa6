"""Contact sheets: one row of frames per candidate video, labelled, so a ranking can be judged at a glance."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from reward.checkpoints import atomic_path
from reward.video.resize import resize_frames
from reward.video.sampling import uniform_frame_indices

#: Width of the text column left of each row, in pixels.
LABEL_WIDTH = 200
#: Height of one text line (Pillow's default bitmap font) and the text margin.
LINE_HEIGHT = 12
MARGIN = 4
#: White space between frames and between rows.
GAP = 2


@dataclass
class SheetRow:
    """One candidate: its video [T, 3, H, W] in [0, 1] and the text lines printed beside it."""

    video: torch.Tensor
    lines: Sequence[str]


def row_height(num_lines: int, thumb_height: int) -> int:
    return max(thumb_height, num_lines * LINE_HEIGHT + 2 * MARGIN)


def _thumbnails(video: torch.Tensor, num_frames: int, thumb_height: int) -> torch.Tensor:
    """``num_frames`` evenly spread frames resized to ``thumb_height`` (aspect kept), uint8 [H, W*k, 3]."""
    frames = video[uniform_frame_indices(video.shape[0], num_frames)].float()
    width = max(1, round(frames.shape[-1] * thumb_height / frames.shape[-2]))
    frames = resize_frames(frames, (thumb_height, width))
    gap = frames.new_ones(3, thumb_height, GAP)
    strip = torch.cat([part for frame in frames for part in (frame, gap)][:-1], dim=-1)
    return strip.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0)


def contact_sheet(
    rows: Sequence[SheetRow], *, title: str = "", frames_per_row: int = 8, thumb_height: int = 96
) -> Image.Image:
    """A ``title`` line, then rows of ``frames_per_row`` frames (fewer if a video is shorter) labelled on the left.

    Width = ``LABEL_WIDTH`` + the widest strip (frames ``GAP`` apart); height = the title line +
    ``row_height`` of every row + ``GAP`` between rows.
    """
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    strips = [_thumbnails(row.video, min(frames_per_row, row.video.shape[0]), thumb_height) for row in rows]
    heights = [row_height(len(row.lines), thumb_height) for row in rows]
    header = LINE_HEIGHT + 2 * MARGIN
    size = (LABEL_WIDTH + max(strip.shape[1] for strip in strips), header + sum(heights) + GAP * (len(rows) - 1))
    sheet = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    draw.text((MARGIN, MARGIN), title, fill="black", font=font)
    top = header
    for row, strip, height in zip(rows, strips, heights):
        sheet.paste(Image.fromarray(strip.numpy()), (LABEL_WIDTH, top))
        for number, line in enumerate(row.lines):
            draw.text((MARGIN, top + MARGIN + number * LINE_HEIGHT), line, fill="black", font=font)
        top += height + GAP
    return sheet


def save_contact_sheet(path: str | Path, rows: Sequence[SheetRow], **kwargs) -> Path:
    """Build a contact sheet and write it as PNG atomically."""
    path = Path(path)
    image = contact_sheet(rows, **kwargs)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
