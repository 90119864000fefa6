"""Scoring throughput (videos/s) of ``reward.scoring.score_videos`` versus decoding workers and batch size.

    python benchmarks/bench_scoring.py --rewards colorfulness dover-tiny --write

Writes synthetic mp4s once into a temporary folder, then scores them with every reward and every
combination of ``--workers`` and ``--batch-sizes`` (worker start-up included, as a user would see
it) and prints a markdown table; ``--write`` puts it under the "Scoring throughput" heading of
benchmarks/RESULTS.md. Rewards without published weights at hand (``*-tiny``) are built with random weights.
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
from reward.scoring import discover_videos, score_videos
from reward.video.io import read_video, write_video
from results_md import write_section

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


def table(args: argparse.Namespace, rows: list[tuple[str, int, int, float]]) -> str:
    lines = [
        f"`python benchmarks/bench_scoring.py --rewards {' '.join(args.rewards)} "
        f"--videos {args.videos} --frames {args.frames} --size {args.size}`: {args.videos} mp4s of "
        f"{args.frames} frames at {args.size}x{args.size}, decoded and scored on {platform.machine()} "
        f"with {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), shared with other jobs "
        f"(load average {args.load:.1f} at the start), so numbers vary run to run. Worker start-up is "
        "included; each reward is warmed up on one video first.",
        "",
        "| reward | --num-workers | --batch-size | videos/s |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {workers} | {batch} | {rate:.2f} |" for name, workers, batch, rate in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rewards", nargs="+", default=["colorfulness", "dover-tiny"])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--write", action="store_true", help="replace the 'Scoring throughput' section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    args.load = os.getloadavg()[0]

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        make_videos(Path(folder), args.videos, args.frames, args.size)
        for name in args.rewards:
            model = reward.load(name, pretrained=not name.endswith("-tiny"))
            model.score(read_video(next(Path(folder).iterdir()))[None])  # warm-up: first-call costs are not throughput
            for workers in args.workers:
                for batch_size in args.batch_sizes:
                    rows.append((name, workers, batch_size, measure(model, Path(folder), workers, batch_size)))
                    print(f"{name} workers={workers} batch={batch_size}: {rows[-1][3]:.2f} videos/s", flush=True)
    body = table(args, rows)
    print(body)
    if args.write:
        write_section(HEADING, body)


if __name__ == "__main__":
    main()
