"""Reading and writing videos (mp4, webm, gif, frame folders) and images, as tensors.

Read: ``read_video`` -> float [T, 3, H, W] in [0, 1] (add ``[None]`` for a reward batch);
``read_video_uint8`` -> uint8 [T, H, W, 3]. Write: ``write_video`` / ``write_image`` take either
layout and write atomically (a temp file renamed into place), so no half-written file is ever seen.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from ..checkpoints import atomic_path
from ..errors import RewardInputError, VideoReadError

#: Suffixes written with PyAV: (container format, video codec).
PYAV_FORMATS = {
    ".mp4": ("mp4", "libx264"),
    ".webm": ("webm", "libvpx-vp9"),
    ".mkv": ("matroska", "libx264"),
    ".mov": ("mov", "libx264"),
}
#: Encoder settings for visually lossless output (rewards judge what they are given, artefacts included).
ENCODER_OPTIONS = {"libx264": {"crf": "12", "preset": "medium"}, "libvpx-vp9": {"crf": "15", "b": "0"}}
#: Muxer settings: mp4/mov put their index (moov) before the frames, so a browser plays while loading.
CONTAINER_OPTIONS = {"mp4": {"movflags": "+faststart"}, "mov": {"movflags": "+faststart"}}
GIF_SUFFIX = ".gif"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: File name pattern of frames written to a folder.
FRAME_NAME = "frame_{:05d}.png"


def _natural_key(path: Path) -> list:
    """Sort ``frame_2`` before ``frame_10``: digit runs compare by value."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _rgb(frame: np.ndarray) -> np.ndarray:
    """Any decoded frame (gray, gray+alpha, RGB, RGBA) as uint8 [H, W, 3]; alpha is dropped."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be 8-bit, got {frame.dtype}")
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.shape[-1] in (1, 2):
        frame = np.repeat(frame[..., :1], 3, axis=-1)
    return np.ascontiguousarray(frame[..., :3])


def _pyav():
    """PyAV, imported on first use: scoring tensors (a GPU training loop, say) needs no FFmpeg."""
    import av

    return av


def _decode_container(path: Path) -> Iterator[np.ndarray]:
    """RGB frames decoded by PyAV (video lengths in headers are not trusted: decode until the end)."""
    av = _pyav()
    try:
        container = av.open(str(path))
    except av.error.EOFError as error:
        raise VideoReadError(
            f"video {path} ends before its first frame: it is empty (zero frames) or truncated."
        ) from error
    with container:
        if not container.streams.video:
            raise VideoReadError(f"video {path} has no video stream (zero frames); a reward needs at least one frame.")
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def _frames(path: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    """Decoded frames of a video file or a folder of images, lazily, at most ``max_frames``."""
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        frames = (iio.imread(file) for file in files)
    elif path.suffix.lower() == GIF_SUFFIX:
        frames = iio.imiter(path, plugin="pillow", mode="RGB")
    else:
        frames = _decode_container(path)
    return itertools.islice(frames, max_frames)


def read_video_uint8(path: str | Path, *, max_frames: int | None = None) -> torch.Tensor:
    """Frames of a video file (mp4, webm, gif, ...) or a folder of png/jpg frames as uint8 [T, H, W, 3].

    Folder frames are taken in name order (numbers compared by value) and must share one size;
    alpha channels are dropped, grey frames repeated to RGB. ``max_frames`` stops decoding early.
    Raises ``VideoReadError`` naming the file if it is missing, unreadable, or has no frames.
    """
    path = Path(path)
    if max_frames is not None and max_frames < 1:
        raise RewardInputError(f"max_frames must be at least 1 (or None for all frames), got {max_frames}.")
    if not path.exists():
        raise VideoReadError(f"video {path} does not exist; check the path.")
    frames: list[np.ndarray] = []
    try:
        for frame in _frames(path, max_frames):
            frame = _rgb(frame)
            if frames and frame.shape != frames[0].shape:
                raise ValueError(f"frame {len(frames)} has size {frame.shape[:2]}, frame 0 has {frames[0].shape[:2]}")
            frames.append(frame)
    except VideoReadError:
        raise
    except Exception as error:  # decoders raise many types (OSError, av.FFmpegError, ValueError, ...)
        raise VideoReadError(
            f"could not read video {path}: {type(error).__name__}: {str(error).rstrip('.')}. The file may be truncated, "
            "corrupt or in an unsupported format; re-encode it (e.g. to H.264 mp4) or pass a frame folder."
        ) from error
    if not frames:
        what = "no png/jpg frames" if path.is_dir() else "no decodable frames"
        raise VideoReadError(f"video {path} has {what}; a reward needs at least one frame.")
    return torch.from_numpy(np.stack(frames))


def read_video(path: str | Path, *, max_frames: int | None = None) -> torch.Tensor:
    """A video file or frame folder as float32 [T, 3, H, W] in [0, 1] (``video[None]`` is a reward batch)."""
    return read_video_uint8(path, max_frames=max_frames).permute(0, 3, 1, 2).float().div_(255)


def _as_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """[T, 3, H, W] float in [0, 1] or uint8 [T, H, W, 3] -> uint8 numpy [T, H, W, 3]."""
    if not isinstance(video, torch.Tensor) or video.ndim != 4:
        shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise RewardInputError(
            f"a video to write must be a 4-D tensor [T, 3, H, W] float in [0, 1] or uint8 [T, H, W, 3], got {shape}."
        )
    if video.dtype == torch.uint8:
        if video.shape[-1] != 3:
            raise RewardInputError(f"uint8 videos are written channels-last [T, H, W, 3], got {tuple(video.shape)}.")
        return video.detach().cpu().numpy()
    if not video.is_floating_point() or video.shape[1] != 3:
        raise RewardInputError(
            f"float videos are written as [T, 3, H, W] in [0, 1], got {video.dtype} {tuple(video.shape)}."
        )
    levels = video.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return levels.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _even_sides(frames: np.ndarray) -> np.ndarray:
    """Pad odd heights/widths by repeating the last row/column (4:2:0 encoders need even sides)."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def _write_pyav(target: Path, frames: np.ndarray, *, container: str, codec: str, fps: float) -> None:
    av = _pyav()
    frames = _even_sides(frames)
    options = CONTAINER_OPTIONS.get(container, {})
    with av.open(str(target), mode="w", format=container, container_options=options) as output:
        stream = output.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = ENCODER_OPTIONS.get(codec, {})
        for frame in frames:
            output.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        output.mux(stream.encode(None))


def _write_folder(path: Path, frames: np.ndarray) -> None:
    """Write PNG frames into a fresh sibling folder, then swap it in place of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for index, frame in enumerate(frames):
            iio.imwrite(staging / FRAME_NAME.format(index), frame, plugin="pillow", extension=".png")
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(staging, path)
            shutil.rmtree(old)
        else:
            os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_video(path: str | Path, video: torch.Tensor, *, fps: float = 8) -> Path:
    """Write [T, 3, H, W] float in [0, 1] or uint8 [T, H, W, 3] to mp4/webm/mkv/mov, gif, or a folder.

    A path without a suffix (or an existing folder) gets numbered PNG frames. mp4 is H.264 and webm
    VP9, both near-lossless (crf 12 / 15) in yuv420p: odd sides are padded by one repeated row or
    column; mp4 and mov carry ``+faststart`` (index first), so browsers play them while loading.
    gif uses Pillow: 256-colour palette, and identical consecutive frames are merged into one
    longer frame. Returns the path written.
    """
    path = Path(path)
    frames = _as_uint8_frames(video)
    if len(frames) == 0:
        raise RewardInputError("cannot write a video with zero frames.")
    if fps <= 0:
        raise RewardInputError(f"fps must be positive, got {fps}.")
    suffix = path.suffix.lower()
    if suffix == "" or path.is_dir():
        _write_folder(path, frames)
    elif suffix == GIF_SUFFIX:
        with atomic_path(path) as tmp:
            iio.imwrite(tmp, frames, plugin="pillow", extension=GIF_SUFFIX, duration=1000 / fps, loop=0)
    elif suffix in PYAV_FORMATS:
        container, codec = PYAV_FORMATS[suffix]
        with atomic_path(path) as tmp:
            _write_pyav(tmp, frames, container=container, codec=codec, fps=fps)
    else:
        raise RewardInputError(
            f"cannot write {path}: unknown video suffix {suffix!r}; use one of "
            f"{', '.join([*PYAV_FORMATS, GIF_SUFFIX])} or a folder path without a suffix."
        )
    return path


def write_image(path: str | Path, image: torch.Tensor) -> Path:
    """Write one image, [3, H, W] float in [0, 1] or uint8 [H, W, 3], to png/jpg atomically."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise RewardInputError(f"cannot write image {path}: use a {', '.join(IMAGE_SUFFIXES)} file name.")
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise RewardInputError(f"an image to write must be [3, H, W] float in [0, 1] or uint8 [H, W, 3], got {shape}.")
    frame = _as_uint8_frames(image[None])[0]
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, frame, plugin="pillow", extension=path.suffix.lower())
    return path
