"""What a page shows for a candidate's file: a video player, an image, or a note; poster frames.

A poster is the video's first frame as a JPEG (at most ``POSTER_MAX_SIDE`` px), kept in the page's
poster folder and reused while it is newer than its video, so rewriting a page of a resumed or
grown run decodes only the new videos.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..checkpoints import atomic_path
from ..errors import VideoReadError
from ..video.io import GIF_SUFFIX, IMAGE_SUFFIXES, read_video_uint8
from ..video.resize import resize_frames

#: Files shown in a ``<video>`` player; a browser that cannot play one gets a note instead.
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".m4v", ".mkv", ".ogv")
#: Files shown as an ``<img>`` (an animated gif plays by itself).
PICTURE_SUFFIXES = (GIF_SUFFIX, ".webp", *IMAGE_SUFFIXES)
POSTER_MAX_SIDE = 480


@dataclass
class Media:
    """``kind``: "video", "picture", "frames" (a folder of frames: its poster only), "missing" or
    "none" (the record has no file); ``size``: (width, height) of the file's frames when known."""

    kind: str
    file: Path | None = None
    poster: Path | None = None
    size: tuple[int, int] | None = None


def _kind(file: Path) -> str:
    if file.is_dir():
        return "frames"
    suffix = file.suffix.lower()
    return "picture" if suffix in PICTURE_SUFFIXES else "video"


def poster_name(file: Path, page_dir: Path) -> str:
    """``<stem>-<8 hex>.jpg``, the hex from the file's path relative to the page (unique, and stable
    when the whole run folder moves)."""
    relative = os.path.relpath(file.absolute(), page_dir.absolute())
    return f"{file.stem}-{hashlib.sha1(relative.encode()).hexdigest()[:8]}.jpg"


def _fresh(poster: Path, file: Path) -> bool:
    return poster.is_file() and poster.stat().st_mtime >= file.stat().st_mtime


def _write_poster(frame: torch.Tensor, poster: Path) -> None:
    """``frame`` uint8 [H, W, 3], shrunk so its longer side is at most ``POSTER_MAX_SIDE``, as a JPEG
    (atomically) whose comment keeps the frame's own size ``WxH``."""
    height, width = frame.shape[:2]
    scale = min(1.0, POSTER_MAX_SIDE / max(height, width))
    if scale < 1:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        small = resize_frames(frame.permute(2, 0, 1)[None].float().div(255), size)[0]
        frame = small.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0)
    with atomic_path(poster) as tmp:
        Image.fromarray(frame.numpy()).save(tmp, format="JPEG", quality=90, comment=f"{width}x{height}".encode())


def _poster_size(poster: Path) -> tuple[int, int] | None:
    """The frame size a poster records, or None for a poster this module did not write."""
    with Image.open(poster) as image:
        comment = image.info.get("comment", b"").decode(errors="replace")
    width, _, height = comment.partition("x")
    return (int(width), int(height)) if width.isdigit() and height.isdigit() else None


def prepare(file: Path | None, page_dir: Path, poster_dir: Path | None) -> Media:
    """Inspect ``file``: its kind, its frame size, and (with ``poster_dir``) its poster, written when
    missing or stale. A file that cannot be decoded gets no poster or size: the page still links it,
    and the browser's own failure to play it is reported on the page."""
    if file is None:
        return Media("none")
    if not file.exists():
        return Media("missing", file)
    kind = _kind(file)
    if kind == "picture":
        try:
            with Image.open(file) as image:
                return Media(kind, file, size=image.size)
        except OSError:
            return Media(kind, file)
    poster = poster_dir / poster_name(file, page_dir) if poster_dir is not None else None
    if poster is not None and _fresh(poster, file) and (size := _poster_size(poster)) is not None:
        return Media(kind, file, poster, size)
    try:
        frame = read_video_uint8(file, max_frames=1)[0]
    except VideoReadError:
        return Media(kind, file)
    if poster is not None:
        _write_poster(frame, poster)
    return Media(kind, file, poster, (int(frame.shape[1]), int(frame.shape[0])))

