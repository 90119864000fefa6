"""Video files for best-of-N: ``write_video`` / ``read_video`` with the signatures of ``reward.video.io``.

Stand-in until ``reward.video.io`` lands in main; then this module re-exports it.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from reward.checkpoints import atomic_path

#: libx264 settings: visually lossless.
X264_OPTIONS = {"crf": "12", "preset": "medium"}


def write_video(path: str | Path, video: torch.Tensor, *, fps: float = 8) -> Path:
    """Write ``video`` [T, 3, H, W] float in [0, 1] as H.264 mp4 (yuv420p; odd sides padded), atomically."""
    path = Path(path)
    frames = video.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)), mode="edge")
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = X264_OPTIONS
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def read_video(path: str | Path) -> torch.Tensor:
    """A video file as float32 [T, 3, H, W] in [0, 1]."""
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255)
