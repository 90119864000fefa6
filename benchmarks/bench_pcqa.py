"""PCQA cost per video for each frame backbone (fp32 / bf16) and the prompt cache's effect, at paper sizes.

Random weights (no downloads). Writes a markdown table under the "PCQA" heading of
benchmarks/RESULTS.md, replacing only that section.

    python benchmarks/bench_pcqa.py --iters 2
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from reward.pcqa import HybridPromptEncoder, build_scorer
from reward.pcqa.config import default_text_towers
from reward.pcqa.presets import convnext_s_config, efficientvit_l_config, eva02_b_config
from results_md import RESULTS, write_section

HEADING = "## PCQA"
BACKBONES = {
    "convnext_small": convnext_s_config,
    "efficientvit_l1": lambda: efficientvit_l_config(backbone="efficientvit_l1.r224_in1k"),
    "efficientvit_l2": efficientvit_l_config,
    "efficientvit_l3": lambda: efficientvit_l_config(backbone="efficientvit_l3.r224_in1k"),
    "eva02_base": eva02_b_config,
}
#: Width of the paper's hybrid prompt embedding (ViT-H-14 1024 + EVA02-L-14 768).
PROMPT_DIM = 1024 + 768


def median_seconds(fn: Callable[[], object], iters: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def backbone_rows(iters: int, frames: int, names: list[str]) -> list[str]:
    """Seconds per video (``frames`` frames at 224): scoring (no grad) and reward gradient (forward + backward)."""
    rows = []
    video = torch.rand(1, frames, 3, 224, 224)
    prompt = torch.randn(1, PROMPT_DIM)
    for name in names:
        scorer = build_scorer(BACKBONES[name](), PROMPT_DIM).eval()
        params = sum(p.numel() for p in scorer.parameters()) / 1e6
        cells = []
        for dtype in (torch.float32, torch.bfloat16):
            with torch.no_grad():
                cells.append(median_seconds(lambda: scorer(video, prompt, dtype), iters))
        for dtype in (torch.float32, torch.bfloat16):
            pixels = video.clone().requires_grad_(True)
            cells.append(median_seconds(lambda: scorer(pixels, prompt, dtype).sum().backward(), iters))
        rows.append(f"| {name} | {params:.1f} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
        print(rows[-1], flush=True)
    return rows


def cache_rows(iters: int) -> list[str]:
    """Paper-size hybrid encoder (random weights): one prompt uncached vs cached."""
    encoder = HybridPromptEncoder(default_text_towers())
    prompt = ["a red fox running through fresh snow at sunrise, cinematic, 4k"]

    def uncached() -> None:
        encoder.cache.clear()
        encoder(prompt)

    cold = median_seconds(uncached, iters)
    warm = median_seconds(lambda: encoder(prompt), max(iters, 100))
    params = sum(p.numel() for p in encoder.parameters()) / 1e6
    row = f"| ViT-H-14-quickgelu + EVA02-L-14 text towers ({params:.0f}M) | {cold * 1e3:.1f} | {warm * 1e3:.3f} | {100 * warm / cold:.1e}% |"
    print(row, flush=True)
    return [row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=2, help="timed iterations per cell (median reported)")
    parser.add_argument("--frames", type=int, default=16, help="frames per video (PCQA samples up to 16)")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    args = parser.parse_args()
    torch.manual_seed(0)
    load = os.getloadavg()[0]
    print(f"threads={torch.get_num_threads()} load={load:.1f}", flush=True)
    backbones = backbone_rows(args.iters, args.frames, args.backbones)
    cache = cache_rows(args.iters)
    body = "\n".join(
        [
            f"`python benchmarks/bench_pcqa.py --iters {args.iters}`: random weights, {platform.processor() or platform.machine()} CPU, "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}, load average {load:.1f} at start (shared machine with "
            "other jobs running: absolute times are several times slower than on an idle machine, where timm's "
            "convnext_small takes 129 ms fp32 / 67 ms bf16 per 224 image, and bf16 loses its advantage under "
            "contention; compare rows, not absolute values). Median of the timed iterations after one warm-up.",
            "",
            f"Cost per video ({args.frames} frames at 224x224, one video per batch; the prompt embedding is given, "
            "as it is after the first call):",
            "",
            "| backbone | params (M) | score fp32 (s) | score bf16 (s) | fwd+bwd fp32 (s) | fwd+bwd bf16 (s) |",
            "|---|---|---|---|---|---|",
            *backbones,
            "",
            "Prompt-embedding cache (one prompt, batch 1):",
            "",
            "| encoder | uncached (ms) | cached (ms) | cached / uncached |",
            "|---|---|---|---|",
            *cache,
        ]
    )
    write_section(HEADING, body)
    print(f"wrote the {HEADING!r} section of {RESULTS}")


if __name__ == "__main__":
    main()
