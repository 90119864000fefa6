"""Scoring throughput (videos/s) of ``reward.scoring.score_videos`` versus decoding workers and batch size.

    python benchmarks/bench_scoring.py --reward dover-tiny --random-weights --write benchmarks/RESULTS.md

Writes synthetic mp4s once into a temporary folder, then scores them with every combination of
``--workers`` and ``--batch-sizes`` (worker start-up included, as a user would see it) and
prints a markdown table; ``--write`` puts it under the "Scoring throughput" heading of a file.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

import reward
from reward.checkpoints import atomic_write_text
from reward.scoring import discover_videos, score_videos
from reward.video.io import write_video

HEADING = "## Scoring throughput"


def make_videos(folder: Path, count: int, frames: int, size: int) -> list[Path]:
    generator = torch.Generator().manual_seed(0)
    paths = []
    for i in range(count):
        base = torch.rand(1, 3, size, size, generator=generator)
        motion = torch.linspace(0, 0.2, frames).view(frames, 1, 1, 1)
        paths.append(write_video(folder / f"{i:04d}.mp4", (base + motion).clamp(0, 1)))
    return paths


def measure(model: reward.VideoReward, folder: Path, workers: int, batch_size: int) -> float:
    items = discover_videos([str(folder)])
    start = time.perf_counter()
    score_videos(model, items, batch_size=batch_size, num_workers=workers, progress=False)
    return len(items) / (time.perf_counter() - start)


def table(args: argparse.Namespace, rows: list[tuple[int, int, float]]) -> str:
    lines = [
        HEADING,
        "",
        f"`python benchmarks/bench_scoring.py --reward {args.reward}{' --random-weights' if args.random_weights else ''} "
        f"--videos {args.videos} --frames {args.frames} --size {args.size}`: {args.videos} mp4s of "
        f"{args.frames} frames at {args.size}x{args.size}, decoded and scored on {platform.machine()} "
        f"with {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), shared with other jobs, so "
        "numbers vary run to run. Worker start-up is included.",
        "",
        "| --num-workers | --batch-size | videos/s |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {workers} | {batch} | {rate:.2f} |" for workers, batch, rate in rows]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the "Scoring throughput" section of ``path``, keeping every other section."""
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    start = text.find(HEADING)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    atomic_write_text(path, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reward", default="dover-tiny")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--write", type=Path, help="markdown file whose 'Scoring throughput' section is replaced")
    args = parser.parse_args()

    model = reward.load(args.reward, pretrained=not args.random_weights)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        make_videos(Path(folder), args.videos, args.frames, args.size)
        for workers in args.workers:
            for batch_size in args.batch_sizes:
                rows.append((workers, batch_size, measure(model, Path(folder), workers, batch_size)))
                print(f"workers={workers} batch={batch_size}: {rows[-1][2]:.2f} videos/s", flush=True)
    section = table(args, rows)
    print(section)
    if args.write:
        write_section(args.write, section)


if __name__ == "__main__":
    main()
