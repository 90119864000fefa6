"""AIGC-VQA at paper size on CPU: forward and forward+backward time and peak memory, fp32 vs bf16, with and
without activation checkpointing.

    python benchmarks/bench_aigcvqa.py --write benchmarks/RESULTS.md

The model is ``aigc-vqa`` at the paper's sizes with random weights (same compute as the real weights),
used as a reward is used in generator fine-tuning: parameters frozen, eval mode, gradients flow to the
pixels only. Every configuration runs in a fresh process: build the model, warm it up with one forward, then ``--iterations``
no-grad forwards (``model.score``) and ``--iterations`` forward+backward passes (``d score / d videos``);
the table shows the best (lowest) time of each, as the machine is shared. Peak memory is measured by
the kernel: the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` after
freed memory is returned with ``malloc_trim``) minus its resident set just before the passes. It counts
everything the passes allocate (activations, autocast casts, allocator slack) and not the weights.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from reward.aigcvqa.model import AigcVqaConfig, AigcVqaReward
from reward.aigcvqa.tokenizer import ImageRewardTokenizer
from results_file import write_section

HEADING = "## AIGC-VQA"
PROMPT = "a red fox running through fresh snow at dawn, cinematic, highly detailed"
GIB = 1024**3
#: (label, compute dtype, activation checkpointing) of every measured configuration.
CONFIGS = [("fp32", "fp32", False), ("bf16", "bf16", False), ("fp32 + checkpointing", "fp32", True), ("bf16 + checkpointing", "bf16", True)]


def paper_model() -> AigcVqaReward:
    """Paper sizes, random weights, with a bert-sized vocabulary built in memory (tokenising costs the same)."""
    from transformers import BertTokenizer

    model = AigcVqaReward(AigcVqaConfig())
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"]
    vocabulary += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    vocabulary += [f"[unused{i}]" for i in range(30522 - len(vocabulary))]
    model.alignment.set_tokenizer(ImageRewardTokenizer(BertTokenizer(vocab={t: i for i, t in enumerate(vocabulary)})))
    return model.requires_grad_(False).eval()


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> int:
    """Return freed memory to the OS, reset the kernel's peak-RSS mark, and give the resident set now."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_bytes("VmRSS")


def best_time(step, iterations: int) -> float:
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def run_worker(dtype: str, checkpointing: bool, iterations: int, frames: int, size: int) -> dict:
    """One configuration in this process: times (s) and peak memory growth (bytes) of each pass kind."""
    model = paper_model().set_compute_dtype(dtype).set_gradient_checkpointing(checkpointing)
    videos = torch.rand(1, frames, 3, size, size, generator=torch.Generator().manual_seed(0))
    result = {"parameters": sum(p.numel() for p in model.parameters())}
    model.score(videos, PROMPT)  # warm-up: kernel selection, tokenizer, cached index tables
    if not checkpointing:  # checkpointing only acts when gradients are recorded
        base = reset_peak()
        result["forward_s"] = best_time(lambda: model.score(videos, PROMPT), iterations)
        result["forward_peak"] = _status_bytes("VmHWM") - base

    def forward_backward() -> None:
        pixels = videos.clone().requires_grad_(True)
        model(pixels, PROMPT).score.sum().backward()
        assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0

    base = reset_peak()
    result["forward_backward_s"] = best_time(forward_backward, iterations)
    result["forward_backward_peak"] = _status_bytes("VmHWM") - base
    return result


def gemm_gflops(dtype: torch.dtype, m: int = 3152, k: int = 1024, n: int = 4096, repeats: int = 3) -> float:
    """Matmul throughput of the ViT-L MLP shape (16 frames x 197 tokens) in ``dtype``: context for the table."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    a @ b
    return 2 * m * k * n / best_time(lambda: a @ b, repeats) / 1e9


def table(args: argparse.Namespace, results: dict[str, dict], context: dict) -> str:
    fp32, bf16 = results["fp32"], results["bf16"]
    speedup = fp32["forward_backward_s"] / bf16["forward_backward_s"]
    cuts = {
        dtype: 1 - results[f"{dtype} + checkpointing"]["forward_backward_peak"] / results[dtype]["forward_backward_peak"]
        for dtype in ("fp32", "bf16")
    }
    lines = [
        HEADING,
        "",
        f"`python benchmarks/bench_aigcvqa.py --iterations {args.iterations} --frames {args.frames} --size {args.size}`: "
        f"`aigc-vqa` at paper size ({fp32['parameters'] / 1e6:.0f} M parameters, random weights, frozen), one video of "
        f"{args.frames} frames at {args.size}x{args.size}, on {context['cpu']} ({os.cpu_count()} cores, "
        f"{context['threads']} torch threads), torch {torch.__version__}. The machine is shared: load average "
        f"{context['load_before']} before and {context['load_after']} after the run, so times vary from run to run; "
        f"each is the best of {args.iterations}. Forward: `model.score` (no grad). Forward+backward: "
        "`model(videos, prompt).score.sum().backward()` into the pixels. Peak memory: growth of the peak resident "
        "set over the loaded model during the passes (kernel VmHWM, see the script's docstring).",
        "",
        "| configuration | forward (s) | forward+backward (s) | peak memory, forward+backward (GiB) |",
        "|---|---:|---:|---:|",
    ]
    for label, _, _ in CONFIGS:
        row = results[label]
        forward = f"{row['forward_s']:.1f}" if "forward_s" in row else "as without"
        lines.append(f"| {label} | {forward} | {row['forward_backward_s']:.1f} | {row['forward_backward_peak'] / GIB:.2f} |")
    lines += [
        "",
        f"- bf16 vs fp32, forward+backward: **{speedup:.2f}x** (target >= 1.6x). Matrix products of the ViT-L's "
        f"shape run at {context['gemm_fp32']:.0f} GFLOP/s in fp32 and {context['gemm_bf16']:.0f} GFLOP/s in bf16 "
        f"on this CPU ({context['threads']} threads; oneDNN's avx512_core_bf16 kernel, no AMX), and they are most of the work, so "
        "bf16 cannot be faster here; on CPUs with AMX and on GPUs bf16 matrix products are several times faster.",
        f"- Checkpointing cuts the forward+backward peak memory by **{cuts['fp32']:.0%}** in fp32 and "
        f"**{cuts['bf16']:.0%}** in bf16 (target >= 40%), for "
        f"{results['fp32 + checkpointing']['forward_backward_s'] / fp32['forward_backward_s']:.2f}x the fp32 time.",
    ]
    return "\n".join(lines) + "\n"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def load_average() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2, help="passes of each kind per configuration (best reported)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="input frame side (the views are 224x224 either way)")
    parser.add_argument("--write", type=Path, help="markdown file whose 'AIGC-VQA' section is replaced")
    parser.add_argument("--worker", nargs=2, metavar=("DTYPE", "CHECKPOINTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        dtype, checkpointing = args.worker[0], args.worker[1] == "1"
        print(json.dumps(run_worker(dtype, checkpointing, args.iterations, args.frames, args.size)))
        return

    context = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "load_before": load_average()}
    context["gemm_fp32"], context["gemm_bf16"] = gemm_gflops(torch.float32), gemm_gflops(torch.bfloat16)
    results = {}
    for label, dtype, checkpointing in CONFIGS:
        command = [sys.executable, __file__, "--worker", dtype, str(int(checkpointing)),
                   "--iterations", str(args.iterations), "--frames", str(args.frames), "--size", str(args.size)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[label] = json.loads(output.strip().splitlines()[-1])
        print(label, results[label], flush=True)
    context["load_after"] = load_average()
    section = table(args, results, context)
    print(section)
    if args.write:
        write_section(args.write, HEADING, section)


if __name__ == "__main__":
    main()
