"""Speed and peak memory of a reward on this machine: no-grad forward and forward+backward into the
pixels (how fine-tuning uses a reward), per compute dtype, so users can see whether bf16 pays here."""
from __future__ import annotations

import ctypes
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .base import VideoReward
from .precision import cpu_has_amx, parse_dtype

#: Prompt used when none is given: tokenising it costs what a real prompt costs.
DEFAULT_PROMPT = "a red fox running through fresh snow at dawn, cinematic, highly detailed"


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_times(step: Callable[[], object], iterations: int, device: torch.device) -> tuple[float, float]:
    """Lowest wall-clock and lowest CPU seconds of ``iterations`` calls of ``step``."""
    walls, cpus = [], []
    for _ in range(iterations):
        synchronize(device)
        wall, cpu = time.perf_counter(), cpu_seconds()
        step()
        synchronize(device)
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds() - cpu)
    return min(walls), min(cpus)


def _status_bytes(field: str) -> int | None:
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def start_peak(device: torch.device) -> int | None:
    """Reset the peak-memory mark of ``device`` and return the memory in use now (None: cannot measure here).

    On a GPU: ``torch.cuda`` allocator statistics. On the CPU (Linux): freed memory is returned to the OS
    (``malloc_trim``) and the kernel's peak resident set (VmHWM) is reset through ``/proc/self/clear_refs``.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    clear_refs = Path("/proc/self/clear_refs")
    if _status_bytes("VmHWM") is None or not clear_refs.exists():
        return None
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        clear_refs.write_text("5")
    except OSError:
        return None
    return _status_bytes("VmRSS")


def peak_growth(device: torch.device, base: int | None) -> int | None:
    """Bytes the peak rose above ``base`` since :func:`start_peak` (None when it could not be measured)."""
    if base is None:
        return None
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) - base
    peak = _status_bytes("VmHWM")
    return None if peak is None else max(peak - base, 0)


@dataclass(frozen=True)
class BenchResult:
    """One configuration's best times (s) and forward+backward peak memory growth (bytes, None if unknown)."""

    dtype: str
    checkpointing: bool
    forward_s: float
    forward_cpu_s: float
    forward_backward_s: float
    forward_backward_cpu_s: float
    forward_backward_peak_bytes: int | None

    def as_dict(self) -> dict:
        return asdict(self)


def bench_reward(
    model: VideoReward,
    *,
    batch_size: int = 1,
    frames: int = 16,
    size: int = 224,
    dtype: torch.dtype | str | None = None,
    checkpointing: bool = False,
    iterations: int = 3,
    prompt: str = DEFAULT_PROMPT,
    seed: int = 0,
) -> BenchResult:
    """Time ``model.score`` and a forward+backward into the pixels on random ``[batch_size, frames, 3, size, size]``
    videos, after one warm-up call; the model's own compute dtype and checkpointing are restored afterwards."""
    if iterations < 1 or batch_size < 1 or frames < 1 or size < 1:
        raise ValueError("bench needs iterations, batch_size, frames and size >= 1")
    device = model.device
    saved = model.compute_dtype, model.gradient_checkpointing
    model.set_compute_dtype(dtype).set_gradient_checkpointing(checkpointing)
    generator = torch.Generator().manual_seed(seed)
    videos = torch.rand(batch_size, frames, 3, size, size, generator=generator).to(device)
    prompts = [prompt] * batch_size

    def forward_backward() -> None:
        pixels = videos.clone().requires_grad_(True)
        model(pixels, prompts).score.sum().backward()
        if not torch.isfinite(pixels.grad).all():
            raise FloatingPointError(f"non-finite pixel gradients in {parse_dtype(dtype) or torch.float32}")

    try:
        model.score(videos, prompts)  # warm-up: kernel selection, tokenizer, cached index tables
        forward_s, forward_cpu_s = best_times(lambda: model.score(videos, prompts), iterations, device)
        forward_backward()
        base = start_peak(device)
        backward_s, backward_cpu_s = best_times(forward_backward, iterations, device)
        peak = peak_growth(device, base)
    finally:
        model.set_compute_dtype(saved[0]).set_gradient_checkpointing(saved[1])
    name = {None: "fp32", torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[parse_dtype(dtype)]
    return BenchResult(name, checkpointing, forward_s, forward_cpu_s, backward_s, backward_cpu_s, peak)


@dataclass(frozen=True)
class BenchReport:
    """Results of one reward on one device, with what decides whether bf16 pays there."""

    reward: str
    device: str
    batch_size: int
    frames: int
    size: int
    amx: bool | None
    results: tuple[BenchResult, ...]

    def bf16_speedup(self, checkpointing: bool = False) -> float | None:
        """fp32 / bf16 forward+backward time (CPU time on the CPU, wall-clock on a GPU), if both were measured."""
        rows = {r.dtype: r for r in self.results if r.checkpointing == checkpointing}
        if "fp32" not in rows or "bf16" not in rows:
            return None
        key = "forward_backward_s" if self.device.startswith("cuda") else "forward_backward_cpu_s"
        return getattr(rows["fp32"], key) / getattr(rows["bf16"], key)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["results"] = [result.as_dict() for result in self.results]
        data["bf16_speedup"] = self.bf16_speedup()
        return data

    def text(self) -> str:
        from .text_table import format_table

        rows = [
            [r.dtype, "yes" if r.checkpointing else "no", r.forward_s, r.forward_cpu_s, r.forward_backward_s,
             r.forward_backward_cpu_s,
             "n/a" if r.forward_backward_peak_bytes is None else f"{r.forward_backward_peak_bytes / 2**20:.1f}"]
            for r in self.results
        ]
        headers = ["dtype", "checkpointing", "forward s", "forward CPU s", "fwd+bwd s", "fwd+bwd CPU s", "fwd+bwd peak MiB"]
        lines = [
            f"{self.reward} on {self.device}: {self.batch_size} x {self.frames} frames at {self.size}x{self.size}, "
            "best of the timed passes",
            format_table(headers, rows),
        ]
        speedup = self.bf16_speedup()
        if speedup is not None:
            basis = "wall-clock" if self.device.startswith("cuda") else "CPU time"
            lines.append(f"bf16 vs fp32, forward+backward: {speedup:.2f}x ({basis})")
        if self.device == "cpu" and self.amx is False:
            lines.append("no AMX usable by torch on this CPU: bf16 matrix products run on its AVX-512 units "
                         "(benchmarks/bench_cpu_peak.py compares their bf16 and fp32 peak rates)")
        return "\n".join(lines)


def bench_report(
    reward: str, device: torch.device, results: list[BenchResult], *, batch_size: int, frames: int, size: int
) -> BenchReport:
    """Bundle results with the device description (and, on the CPU, whether torch can use AMX)."""
    amx = cpu_has_amx() if device.type == "cpu" else None
    return BenchReport(reward, str(device), batch_size, frames, size, amx, tuple(results))
