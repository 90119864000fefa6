"""Small video files with the awkward properties real files have, written with PyAV for the sparse-reading tests:
B-frames, short GOPs, variable frame rate, odd sizes, 4:4:4 and 10-bit pixels, a rotation tag, a lying header,
a cut-off stream, audio only, and a still image under a video suffix."""
from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def moving_frames(count: int, height: int, width: int) -> np.ndarray:
    """uint8 [T, H, W, 3]: gradients and a bright square that move, so every frame differs and codecs predict."""
    rows, cols = np.mgrid[0:height, 0:width]
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for t in range(count):
        frames[t, ..., 0] = (cols * 3 + t * 5) % 256
        frames[t, ..., 1] = (rows * 4 + t * 3) % 256
        frames[t, ..., 2] = 60 + (t * 11) % 120
        top, left = (t * 2) % max(height - 8, 1), (t * 3) % max(width - 8, 1)
        frames[t, top:top + 8, left:left + 8] = 255
    return frames


def write_clip(
    path: Path, frames: int = 45, height: int = 48, width: int = 64, *, codec: str = "libx264",
    container: str | None = None, pix_fmt: str = "yuv420p", gop: int = 8, bframes: int = 3,
    variable_rate: bool = False, options: dict[str, str] | None = None,
) -> Path:
    """Encode :func:`moving_frames`: a keyframe every ``gop`` frames, ``bframes`` B-frames (H.264/MPEG-4), and with
    ``variable_rate`` frame durations of 30, 55 and 80 ms in turn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = {"g": str(gop), **(options or {})}
    if codec in ("libx264", "mpeg4"):
        settings.update(bf=str(bframes), sc_threshold="0")  # B-frames; keyframes only every ``gop`` frames
    with av.open(str(path), "w", format=container) as output:
        stream = output.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = settings
        if variable_rate:
            stream.codec_context.time_base = Fraction(1, 1000)
        clock = 0
        for index, pixels in enumerate(moving_frames(frames, height, width)):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if variable_rate:
                frame.pts, frame.time_base = clock, Fraction(1, 1000)
                clock += 30 + 25 * (index % 3)
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def _box(data: bytes, name: bytes) -> int:
    """Offset of the first ``name`` box in an mp4 (a plain search: our files hold one of each)."""
    offset = data.find(name)
    if offset < 4:
        raise ValueError(f"no {name!r} box")
    return offset - 4


def write_rotated(path: Path, degrees: int = 90, **clip: object) -> Path:
    """An mp4 whose track header carries a display matrix turning it by ``degrees`` (as phones write them)."""
    write_clip(path, **clip)
    data = bytearray(path.read_bytes())
    tkhd = _box(bytes(data), b"tkhd")
    version = data[tkhd + 8]
    matrix = tkhd + 8 + (52 if version == 1 else 40)
    one, minus_one = 0x00010000, 0xFFFF0000
    cosine, sine = {90: (0, one), 180: (minus_one, 0), 270: (0, minus_one)}[degrees]
    negated_sine = {one: minus_one, minus_one: one, 0: 0}[sine]
    data[matrix:matrix + 36] = struct.pack(">9I", cosine, sine, 0, negated_sine, cosine, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def write_lying_avi(path: Path, claimed: int, **clip: object) -> Path:
    """An AVI (MPEG-4 Part 2 with B-frames) whose main and stream headers claim ``claimed`` frames."""
    write_clip(path, codec="mpeg4", container="avi", **clip)
    data = bytearray(path.read_bytes())
    avih = data.find(b"avih") + 8
    data[avih + 16:avih + 20] = struct.pack("<I", claimed)  # dwTotalFrames
    strh = data.find(b"strh") + 8
    data[strh + 32:strh + 36] = struct.pack("<I", claimed)  # dwLength
    path.write_bytes(bytes(data))
    return path


def write_cut(path: Path, keep: float = 0.6, **clip: object) -> Path:
    """An mp4 with its index up front (faststart) cut after ``keep`` of its bytes: the header lists every frame,
    the stream ends early, its last packet half there."""
    whole = write_clip(path.with_name(f"whole_{path.name}"), **clip)
    with av.open(str(whole)) as source, av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as output:
        stream = output.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                output.mux(packet)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    whole.unlink()
    return path


def write_audio_only(path: Path, seconds: float = 0.5) -> Path:
    """An mp4 holding one AAC audio stream and no video."""
    with av.open(str(path), "w") as output:
        stream = output.add_stream("aac", rate=16000)
        samples = int(16000 * seconds)
        tone = (0.1 * np.sin(np.arange(samples) / 5)).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, start:start + 1024], format="fltp", layout="mono")
            frame.sample_rate = 16000
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def write_still_image_as_video(path: Path, height: int = 24, width: int = 40) -> Path:
    """A PNG image saved under a video suffix (what a mislabelled download looks like)."""
    from PIL import Image

    Image.fromarray(moving_frames(1, height, width)[0]).save(path, format="PNG")
    return path
