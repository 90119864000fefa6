"""Regenerate docs/explain_example.png: `aigc-reward explain` on a synthetic clip with the tiny DOVER.

    python docs/make_explain_example.py

The clip (a sky gradient, a sun moving right, and blocky noise over the lower-left quarter in its
second half) is written to a temporary mp4 first, so the picture comes from the same command a
user runs. ``dover-tiny`` has random weights: the picture shows the layout, not a judgement.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from reward.cli import main
from reward.video.io import write_video

DOCS = Path(__file__).resolve().parent


def synthetic_clip(frames: int = 24, height: int = 240, width: int = 320) -> torch.Tensor:
    """[T, 3, H, W] in [0, 1]: a scene whose lower-left quarter turns to blocky noise halfway through."""
    rows = torch.linspace(0, 1, height)[:, None]
    cols = torch.linspace(0, 1, width)[None, :]
    sky = torch.stack([0.35 + 0.3 * rows, 0.55 + 0.25 * rows, 0.95 - 0.3 * rows]).expand(3, height, width)
    clip = sky.expand(frames, 3, height, width).clone()
    generator = torch.Generator().manual_seed(0)
    for t in range(frames):
        centre_x = 0.2 + 0.6 * t / (frames - 1)
        sun = ((cols - centre_x) ** 2 * (width / height) ** 2 + (rows - 0.3) ** 2) < 0.01
        clip[t, 0][sun], clip[t, 1][sun], clip[t, 2][sun] = 1.0, 0.85, 0.3
        if t >= frames // 2:
            blocks = torch.rand(3, height // 16, width // 16, generator=generator)
            noise = blocks.repeat_interleave(8, 1).repeat_interleave(8, 2)[:, : height // 2, : width // 2]
            clip[t, :, height // 2 :, : width // 2] = noise
    return clip


def main_example() -> None:
    with tempfile.TemporaryDirectory() as folder:
        video = write_video(Path(folder) / "clip.mp4", synthetic_clip())
        main([
            "explain", str(video), "--prompt", "a sun drifting across a clear evening sky",
            "--reward", "dover-tiny", "--random-weights", "--out", str(folder), "--name", "explain_example",
        ])
        (DOCS / "explain_example.png").write_bytes((Path(folder) / "explain_example.png").read_bytes())


if __name__ == "__main__":
    torch.manual_seed(0)
    main_example()
