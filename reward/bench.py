"""Speed, arithmetic efficiency and peak memory of a reward on this machine: no-grad forward and
forward+backward into the pixels (how fine-tuning uses a reward), per compute dtype, with and without
checkpointing, eager or with compiled backbones. FLOPs per call come from
``torch.utils.flop_counter.FlopCounterMode``; the achieved rate is compared with the rate of a large
matrix product measured in the same run, in the same dtype."""
from __future__ import annotations

import ctypes
import resource
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .base import VideoReward
from .precision import cpu_has_amx, parse_dtype

#: Prompt used when none is given: tokenising it costs what a real prompt costs.
DEFAULT_PROMPT = "a red fox running through fresh snow at dawn, cinematic, highly detailed"
#: Short names of the compute dtypes in reports.
DTYPE_NAMES = {None: "fp32", torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
#: Eager backbones, or backbones wrapped by torch.compile.
MODES = ("eager", "compiled")
#: What is timed: a no-grad forward, and a forward + backward into the pixels.
PASSES = ("forward", "forward_backward")


def dtype_name(dtype: torch.dtype | str | None) -> str:
    return DTYPE_NAMES[parse_dtype(dtype)]


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


def threads(device: torch.device) -> int | None:
    """Torch threads doing the work on the CPU (None on a GPU)."""
    return torch.get_num_threads() if device.type == "cpu" else None


# -- FLOPs -------------------------------------------------------------------------------------------
def _count_cpu_fused_attention() -> None:
    """torch's FlopCounterMode has formulas for the GPU fused attention kernels but not for the CPU one
    (``_scaled_dot_product_flash_attention_for_cpu`` and its backward), which would count as 0: give them the
    same formulas (q @ k^T and p @ v, and the backward's five matrix products)."""
    from torch.utils.flop_counter import flop_registry

    aten = torch.ops.aten
    flop_registry.setdefault(aten._scaled_dot_product_flash_attention_for_cpu, flop_registry[aten._scaled_dot_product_flash_attention])
    flop_registry.setdefault(
        aten._scaled_dot_product_flash_attention_for_cpu_backward, flop_registry[aten._scaled_dot_product_flash_attention_backward]
    )


def count_flops(step: Callable[[], object]) -> int:
    """Floating-point operations of the matrix products, convolutions and attention ``step()`` runs (2 per
    multiply-add; elementwise work is not counted), as torch's FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    _count_cpu_fused_attention()
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


# -- the machine's matrix-product rate -----------------------------------------------------------------
@dataclass(frozen=True)
class MatmulRate:
    """Best rate of an ``n x n`` by ``n x n`` matrix product in ``dtype``, GFLOP/s: on wall-clock time, and on the
    CPU also on CPU time (CPU seconds / threads, which other jobs sharing the cores do not inflate)."""

    dtype: str
    n: int
    gflops: float
    cpu_gflops: float | None


def matmul_rate(dtype: torch.dtype | str | None, device: torch.device, n: int | None = None, iterations: int = 3) -> MatmulRate:
    """Measure the machine's matrix-product rate in ``dtype``: the reference for a reward's achieved rate."""
    dtype = parse_dtype(dtype) or torch.float32
    n = n or (8192 if device.type == "cuda" else 2048)
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=generator).to(device=device, dtype=dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up: kernel selection, pages of ``out`` touched
    wall, cpu = best_times(lambda: torch.mm(a, b, out=out), iterations, device)
    flops = 2 * n**3
    workers = threads(device)
    return MatmulRate(dtype_name(dtype), n, flops / wall / 1e9, None if workers is None else flops * workers / cpu / 1e9)


# -- one configuration ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchResult:
    """One configuration's best times (s), peak memory growth (bytes, None if unknown) and FLOPs per call
    (None where not counted, or for a pass not measured)."""

    dtype: str
    checkpointing: bool
    forward_s: float | None
    forward_cpu_s: float | None
    forward_backward_s: float | None
    forward_backward_cpu_s: float | None
    forward_backward_peak_bytes: int | None
    compiled: bool = False
    forward_peak_bytes: int | None = None
    forward_flops: int | None = None
    forward_backward_flops: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BenchInputs:
    """Random videos ``[batch, frames, 3, size, size]`` on the model's device and one prompt per video."""

    videos: torch.Tensor
    prompts: list[str]

    @classmethod
    def random(cls, device: torch.device, *, batch_size: int = 1, frames: int = 16, size: int = 224,
               prompt: str = DEFAULT_PROMPT, seed: int = 0) -> "BenchInputs":
        if batch_size < 1 or frames < 1 or size < 1:
            raise ValueError("bench needs batch_size, frames and size >= 1")
        generator = torch.Generator().manual_seed(seed)
        return cls(torch.rand(batch_size, frames, 3, size, size, generator=generator).to(device), [prompt] * batch_size)

    def forward(self, model: VideoReward) -> Callable[[], object]:
        """A no-grad forward (``model.score``)."""
        return lambda: model.score(self.videos, self.prompts)

    def forward_backward(self, model: VideoReward) -> Callable[[], None]:
        """A forward and a backward of the summed score into the pixels; fails on non-finite gradients."""

        def step() -> None:
            pixels = self.videos.clone().requires_grad_(True)
            model(pixels, self.prompts).score.sum().backward()
            if not torch.isfinite(pixels.grad).all():
                raise FloatingPointError(f"non-finite pixel gradients in {dtype_name(model.compute_dtype)}")

        return step


def reward_flops(
    model: VideoReward, inputs: BenchInputs, *, checkpointing: bool = False, passes: Sequence[str] = PASSES
) -> tuple[int | None, int | None]:
    """FLOPs of one forward and of one forward+backward (recomputation included with ``checkpointing``; None for a
    pass not in ``passes``), counted on the model as it runs now: call it on the eager model (the arithmetic does
    not depend on the compute dtype)."""
    saved = model.gradient_checkpointing
    model.set_gradient_checkpointing(checkpointing)
    try:
        inputs.forward(model)()  # warm-up outside the counter: caches and tokenizers built once
        return tuple(count_flops(getattr(inputs, kind)(model)) if kind in passes else None for kind in PASSES)
    finally:
        model.set_gradient_checkpointing(saved)


def _timed_with_peak(step: Callable[[], object], iterations: int, device: torch.device) -> tuple[float, float, int | None]:
    """Best wall and CPU seconds of ``step`` and the peak memory growth over them (after one untimed call)."""
    step()
    base = start_peak(device)
    wall, cpu = best_times(step, iterations, device)
    return wall, cpu, peak_growth(device, base)


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
    compiled: bool = False,
    flops: tuple[int | None, int | None] | None = None,
    passes: Sequence[str] = PASSES,
) -> BenchResult:
    """Time ``model.score`` and a forward+backward into the pixels (``passes``) on random ``[batch_size, frames, 3,
    size, size]`` videos, each after one warm-up call, with the peak memory of each. ``flops`` (forward,
    forward+backward) come from :func:`reward_flops`, counted here when not given on an eager model
    (``compiled=False``: compiled code bypasses the counter). The model's compute dtype and checkpointing are
    restored afterwards."""
    unknown = sorted(set(passes) - set(PASSES))
    if iterations < 1 or unknown or not passes:
        raise ValueError(f"bench needs iterations >= 1 and passes from {list(PASSES)}")
    device = model.device
    inputs = BenchInputs.random(device, batch_size=batch_size, frames=frames, size=size, prompt=prompt, seed=seed)
    saved = model.compute_dtype, model.gradient_checkpointing
    measured: dict[str, tuple[float | None, float | None, int | None]] = {}
    try:
        if flops is None and not compiled:
            flops = reward_flops(model, inputs, checkpointing=checkpointing, passes=passes)
        model.set_compute_dtype(dtype).set_gradient_checkpointing(checkpointing)
        for kind in PASSES:
            measured[kind] = _timed_with_peak(getattr(inputs, kind)(model), iterations, device) if kind in passes else (None,) * 3
    finally:
        model.set_compute_dtype(saved[0]).set_gradient_checkpointing(saved[1])
    (forward_s, forward_cpu_s, forward_peak), (backward_s, backward_cpu_s, backward_peak) = measured["forward"], measured["forward_backward"]
    forward_flops, backward_flops = flops if flops is not None else (None, None)
    return BenchResult(dtype_name(dtype), checkpointing, forward_s, forward_cpu_s, backward_s, backward_cpu_s, backward_peak,
                       compiled, forward_peak, forward_flops if "forward" in passes else None,
                       backward_flops if "forward_backward" in passes else None)


# -- every configuration of one reward ---------------------------------------------------------------------
def bench_configurations(
    load_model: Callable[[], VideoReward],
    *,
    dtypes: Sequence[torch.dtype | str | None] = ("fp32", "bf16"),
    checkpointing: Iterable[bool] = (False,),
    modes: Sequence[str] = ("eager",),
    batch_size: int = 1,
    frames: int = 16,
    size: int = 224,
    iterations: int = 3,
    prompt: str = DEFAULT_PROMPT,
    passes: Sequence[str] = PASSES,
) -> list[BenchResult]:
    """:func:`bench_reward` for every mode x checkpointing x dtype; ``load_model()`` builds a fresh model per mode
    (compiling is in place). FLOPs are counted once per checkpointing setting, on the first model before compiling."""
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"unknown modes {unknown}; choose from {list(MODES)}")
    checkpointing = tuple(checkpointing)
    sizes = dict(batch_size=batch_size, frames=frames, size=size, prompt=prompt)
    results, flops = [], {}
    for mode in modes:
        model = load_model()
        if not flops:  # once, on the first model, before anything is compiled
            inputs = BenchInputs.random(model.device, batch_size=batch_size, frames=frames, size=size, prompt=prompt)
            flops = {ckpt: reward_flops(model, inputs, checkpointing=ckpt, passes=passes) for ckpt in checkpointing}
        if mode == "compiled":
            model.compile()
        results += [
            bench_reward(model, dtype=dtype, checkpointing=ckpt, iterations=iterations, compiled=mode == "compiled",
                         flops=flops.get(ckpt), passes=passes, **sizes)
            for ckpt in checkpointing
            for dtype in dtypes
        ]
        del model
    return results


# -- report -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchReport:
    """Results of one reward on one device, with the matrix-product rates they are measured against and what
    decides whether bf16 pays there."""

    reward: str
    device: str
    batch_size: int
    frames: int
    size: int
    amx: bool | None
    results: tuple[BenchResult, ...]
    matmul: tuple[MatmulRate, ...] = ()
    threads: int | None = None

    @property
    def on_gpu(self) -> bool:
        return not self.device.startswith("cpu")

    def bf16_speedup(self, checkpointing: bool = False, kind: str = "forward_backward") -> float | None:
        """fp32 / bf16 time of ``kind`` (``forward`` or ``forward_backward``; CPU time on the CPU, wall-clock on a
        GPU) of the eager rows, if both were measured."""
        rows = {r.dtype: r for r in self.results if r.checkpointing == checkpointing and not r.compiled}
        key = f"{kind}_s" if self.on_gpu else f"{kind}_cpu_s"
        times = [getattr(rows[d], key) if d in rows else None for d in ("fp32", "bf16")]
        return None if None in times else times[0] / times[1]

    def efficiency(self, result: BenchResult) -> dict[str, float | None]:
        """Achieved GFLOP/s and percent of the same-dtype matrix-product rate, forward and forward+backward, on
        wall-clock time and (CPU) on CPU time / threads; None where FLOPs or the rate are missing."""
        rate = next((m for m in self.matmul if m.dtype == result.dtype), None)
        out: dict[str, float | None] = {}
        for kind in ("forward", "forward_backward"):
            flops = getattr(result, f"{kind}_flops")
            wall, cpu = getattr(result, f"{kind}_s"), getattr(result, f"{kind}_cpu_s")
            gflops = None if flops is None or wall is None else flops / wall / 1e9
            cpu_gflops = None if flops is None or self.threads is None or not cpu else flops * self.threads / cpu / 1e9
            out[f"{kind}_gflops"] = gflops
            out[f"{kind}_matmul_percent"] = None if gflops is None or rate is None else 100 * gflops / rate.gflops
            out[f"{kind}_matmul_percent_cpu"] = (
                None if cpu_gflops is None or rate is None or rate.cpu_gflops is None else 100 * cpu_gflops / rate.cpu_gflops
            )
        return out

    def as_dict(self) -> dict:
        data = asdict(self)
        data["results"] = [{**result.as_dict(), **self.efficiency(result)} for result in self.results]
        data["bf16_speedup"] = self.bf16_speedup()
        data["bf16_forward_speedup"] = self.bf16_speedup(kind="forward")
        return data

    def text(self) -> str:
        from .text_table import format_table

        def number(value: float | None, digits: int = 1) -> str:
            return "n/a" if value is None else f"{value:.{digits}f}"

        def mib(value: int | None) -> str:
            return "n/a" if value is None else f"{value / 2**20:.1f}"

        on_cpu = self.threads is not None
        rows = []
        for r in self.results:
            eff = self.efficiency(r)
            row = [r.dtype, "compiled" if r.compiled else "eager", "yes" if r.checkpointing else "no"]
            for kind in ("forward", "forward_backward"):
                flops = getattr(r, f"{kind}_flops")
                row += [number(getattr(r, f"{kind}_s"), 3), number(None if flops is None else flops / 1e9),
                        number(eff[f"{kind}_gflops"]), number(eff[f"{kind}_matmul_percent"], 0)]
                if on_cpu:
                    row.append(number(eff[f"{kind}_matmul_percent_cpu"], 0))
            rows.append(row + [mib(r.forward_peak_bytes), mib(r.forward_backward_peak_bytes)])
        headers = ["dtype", "mode", "ckpt"]
        for kind in ("fwd", "fwd+bwd"):
            headers += [f"{kind} s", f"{kind} GFLOP", f"{kind} GFLOP/s", f"{kind} %mm"] + ([f"{kind} %mm CPU"] if on_cpu else [])
        headers += ["fwd peak MiB", "fwd+bwd peak MiB"]
        lines = [
            f"{self.reward} on {self.device}: {self.batch_size} x {self.frames} frames at {self.size}x{self.size}, best of "
            "the timed passes; %mm: percent of the same-dtype matrix-product rate below, on wall-clock time"
            + (" (%mm CPU: on CPU time / threads, fairer when other jobs share the cores)" if on_cpu else ""),
            format_table(headers, rows),
        ]
        if self.matmul:
            lines.append("matrix product: " + ", ".join(
                f"{m.dtype} {m.n}x{m.n} {m.gflops:.0f} GFLOP/s" + ("" if m.cpu_gflops is None else f" ({m.cpu_gflops:.0f} on CPU time)")
                for m in self.matmul) + ("" if self.threads is None else f"; {self.threads} torch thread(s)"))
        speedup = self.bf16_speedup()
        forward = self.bf16_speedup(kind="forward")
        if speedup is not None or forward is not None:
            basis = "wall-clock" if self.on_gpu else "CPU time"
            ratios = {name: "n/a" if value is None else f"{value:.2f}x" for name, value in (("fwd+bwd", speedup), ("fwd", forward))}
            lines.append(f"bf16 vs fp32, forward+backward: {ratios['fwd+bwd']}, forward: {ratios['fwd']} ({basis})")
        if self.device == "cpu" and self.amx is False:
            lines.append("no AMX usable by torch on this CPU: bf16 matrix products run on its AVX-512 units "
                         "(benchmarks/bench_cpu_peak.py compares their bf16 and fp32 peak rates)")
        elif self.device == "cpu" and self.amx:
            lines.append("AMX usable by torch on this CPU: bf16 matrix products run on its matrix units")
        return "\n".join(lines)


def bench_report(
    reward: str, device: torch.device, results: list[BenchResult], *, batch_size: int, frames: int, size: int,
    matmul: Sequence[MatmulRate] = (),
) -> BenchReport:
    """Bundle results with the device description (and, on the CPU, whether torch can use AMX and its threads)."""
    amx = cpu_has_amx() if device.type == "cpu" else None
    return BenchReport(reward, str(device), batch_size, frames, size, amx, tuple(results), tuple(matmul), threads(device))
