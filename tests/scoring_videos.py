"""Video files for the scoring and CLI tests, written with imageio / PyAV directly."""
from __future__ import annotations

from pathlib import Path

import av
import imageio.v3 as iio
import numpy as np


def write_mp4(path: Path, frames: int = 4, height: int = 32, width: int = 48, seed: int = 0) -> Path:
    """A small random-colour mp4 (sides multiples of 16, so no resizing by the encoder)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(1, height, width, 3))
    drift = rng.integers(-20, 21, size=(frames, 1, 1, 3))
    pixels = np.clip(base + drift, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, pixels, plugin="pyav", codec="libx264", fps=8)
    return path


def write_zero_frame_mp4(path: Path) -> Path:
    """A valid mp4 container with a video stream and no frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()
    return path


def write_corrupt(path: Path) -> Path:
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    return path
