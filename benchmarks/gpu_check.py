"""The GPU check: one command on a CUDA machine, about seven minutes, results as markdown in ``--out``.

    bash benchmarks/gpu_check.sh                          # on the GPU machine (wheels, goldens, then this)
    python benchmarks/gpu_check.py --out OUT              # the same once the environment is set
    python benchmarks/gpu_check.py --dry-run --out OUT    # every step on the tiny presets, on this CPU

Steps, each in a child process with a time cap (a step cut short keeps what it finished; the report
is rewritten after every step, so a check stopped from outside still leaves one):

1. ``tests``: ``pytest -m cuda`` on tests/test_cuda.py and tests/test_host_sync.py: golden parity in
   fp32 with the CPU tolerances, bf16 against fp32, finite gradients, checkpointing, compiled backbones,
   best-of-N, a reward-backprop step, a DDPO epoch, and forward+backward under
   ``torch.cuda.set_sync_debug_mode("error")``.
2. ``matmul``: the GPU's bf16 matrix-product rate, measured here (the % columns divide by it).
3. ``eager`` and 4. ``compiled`` benchmarks of ``aigc-vqa``, ``dover`` and ``pcqa-convnext-s`` at paper
   size with random weights (same arithmetic as real weights), frozen as a reward is in fine-tuning:
   forward and forward+backward into the pixels, batch 1 and 8, fp32 and bf16, through
   ``reward.bench.bench_reward`` (best of the timed passes, peak memory of forward+backward), plus
   checkpointing at batch 8. FLOPs are counted once per reward and batch with
   ``torch.utils.flop_counter`` (useful work: a checkpointed pass is credited the same FLOPs). The
   compiled step runs the most telling configurations first and stops at its cap: compiling a
   paper-size reward takes minutes.

The dry run uses the tiny presets at batch 1 and 2, and compiles with Dynamo alone (``backend="eager"``):
Inductor's code generation takes minutes per reward on a 2-core CPU. Its test step only collects the
``cuda`` tests (they skip without a GPU).

Targets reported (not asserted): ``aigc-vqa`` bf16 forward at batch 8 >= 40% of the bf16 matmul rate;
bf16 >= 2x fp32 for forward+backward; checkpointing cuts forward+backward peak memory by >= 40%.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = "gpu_check.md"
RESULTS = "gpu_check.json"
BENCH_ROWS = "bench.jsonl"
TEST_FILES = ("tests/test_host_sync.py", "tests/test_cuda.py")  # the compiled tests (slowest) come last
GIB = 1024**3
#: Targets of issue #12: reported against the measured numbers, never asserted.
TARGET_PEAK_FRACTION = 0.40
TARGET_BF16_SPEEDUP = 2.0
TARGET_CHECKPOINT_SAVING = 0.40


@dataclass(frozen=True)
class Plan:
    """What one run measures: the real check or the dry run."""

    rewards: dict[str, str]  # paper name -> preset actually built
    overrides: dict[str, dict]  # preset -> reward.load overrides
    videos: dict[str, tuple[int, int]]  # paper name -> (frames, side)
    batches: tuple[int, ...]
    dtypes: tuple[str, ...]
    compiled: tuple[tuple[int, str], ...]  # (batch, dtype) compiled, in order of interest
    checkpoint_batch: int
    iterations: int
    backend: str
    matmul_side: int
    device: str
    caps: dict[str, float]  # step -> seconds (the compiled step gets what is left of the budget)


GPU_PLAN = Plan(
    rewards={"aigc-vqa": "aigc-vqa", "dover": "dover", "pcqa-convnext-s": "pcqa-convnext-s"},
    overrides={},
    videos={"aigc-vqa": (16, 224), "dover": (32, 224), "pcqa-convnext-s": (16, 224)},
    batches=(1, 8),
    dtypes=("fp32", "bf16"),
    compiled=((8, "bf16"), (8, "fp32"), (1, "bf16"), (1, "fp32")),
    checkpoint_batch=8,
    iterations=3,
    backend="inductor",
    matmul_side=8192,
    device="cuda",
    caps={"tests": 190, "matmul": 20, "eager": 115},
)
DRY_PLAN = Plan(
    rewards={"aigc-vqa": "aigc-vqa-tiny", "dover": "dover-tiny", "pcqa-convnext-s": "pcqa-tiny"},
    overrides={"dover-tiny": dict(technical_clip_len=4, technical_aligned=4, technical_fragments=2,
                                  aesthetic_clip_len=4, aesthetic_t_frag=4, aesthetic_size=64)},
    videos={"aigc-vqa": (4, 32), "dover": (4, 32), "pcqa-convnext-s": (4, 32)},
    batches=(1, 2),
    dtypes=("fp32", "bf16"),
    compiled=((1, "fp32"),),
    checkpoint_batch=2,
    iterations=1,
    backend="eager",
    matmul_side=512,
    device="cpu",
    caps={"tests": 600, "matmul": 120, "eager": 1500},  # generous: a shared 2-core CPU, where nothing should be cut
)


# -- child processes -----------------------------------------------------------------------------
def run_capped(command: list[str], seconds: float, log: Path) -> tuple[str, float]:
    """Run ``command`` (output appended to ``log``) for at most ``seconds``; ``(status, elapsed)``."""
    start = time.monotonic()
    with log.open("a") as output:
        output.write(f"\n$ {' '.join(command)}  (cap {seconds:.0f} s)\n")
        output.flush()
        child = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            code = child.wait(timeout=max(seconds, 1))
            status = "done" if code == 0 else f"exit {code}"
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            status = f"cut at its {seconds:.0f} s cap"
    return status, time.monotonic() - start


def worker_command(args: argparse.Namespace, step: str, reward_name: str | None = None) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--out", str(args.out), "--worker", step]
    if reward_name:
        command += ["--reward", reward_name]
    return command + (["--dry-run"] if args.dry_run else [])


# -- workers (run in the child processes) -------------------------------------------------------
def matmul_rate(plan: Plan) -> dict:
    """TFLOP/s of a square bf16 matrix product (mean of 10 after 3 warm-ups), the ceiling the % columns use."""
    import torch

    device = torch.device(plan.device)
    side = plan.matmul_side
    a = torch.randn(side, side, dtype=torch.bfloat16, device=device)
    b = torch.randn(side, side, dtype=torch.bfloat16, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    sync(device)
    seconds = (time.perf_counter() - start) / 10
    return {"side": side, "tflops": 2 * side**3 / seconds / 1e12}


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_reward(name: str, plan: Plan):
    """A paper-size reward with random weights (aigc-vqa with an in-memory BERT vocabulary), frozen, on the device."""
    import reward

    preset = plan.rewards[name]
    if preset == "aigc-vqa":
        from bench_aigcvqa import paper_model

        model = paper_model()
    else:
        model = reward.load(preset, pretrained=False, **plan.overrides.get(preset, {}))
    return model.requires_grad_(False).eval().to(plan.device)


def count_flops(model, batch: int, frames: int, side: int, prompt: str) -> tuple[int, int]:
    """FLOPs of one forward and of one forward+backward into the pixels (``torch.utils.flop_counter``, eager)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    videos = torch.rand(batch, frames, 3, side, side, device=model.device)
    with FlopCounterMode(display=False) as forward, torch.no_grad():
        model(videos, [prompt] * batch)
    pixels = videos.requires_grad_(True)
    with FlopCounterMode(display=False) as both:
        model(pixels, [prompt] * batch).score.sum().backward()
    return forward.get_total_flops(), both.get_total_flops()


def bench_worker(name: str, compiled: bool, plan: Plan, out: Path) -> None:
    """Benchmark one reward (eager or compiled), appending one JSON line per configuration as it finishes."""
    import torch

    from reward.bench import DEFAULT_PROMPT, bench_reward

    frames, side = plan.videos[name]
    model = build_reward(name, plan)
    counted = {r["batch"]: (r["forward_flops"], r["forward_backward_flops"]) for r in read_rows(out) if r["reward"] == name}
    flops = {batch: counted.get(batch) or count_flops(model, batch, frames, side, DEFAULT_PROMPT) for batch in plan.batches}
    if compiled:
        configs = [(batch, dtype, False) for batch, dtype in plan.compiled]
        model.compile(backend=plan.backend)
    else:
        configs = [(batch, dtype, False) for batch in plan.batches for dtype in plan.dtypes]
        configs += [(plan.checkpoint_batch, dtype, True) for dtype in plan.dtypes]
    for batch, dtype, checkpointing in configs:
        row = {"reward": name, "preset": plan.rewards[name], "mode": "compiled" if compiled else "eager",
               "batch": batch, "frames": frames, "side": side, "dtype": dtype, "checkpointing": checkpointing,
               "forward_flops": flops[batch][0], "forward_backward_flops": flops[batch][1]}
        start = time.monotonic()
        try:
            result = bench_reward(model, batch_size=batch, frames=frames, size=side, dtype=dtype,
                                  checkpointing=checkpointing, iterations=plan.iterations)
            row.update(result.as_dict())
            if compiled:
                row["compile_status"] = dict(model.compile_status)
        except torch.OutOfMemoryError as error:
            row["error"] = f"out of memory: {str(error).splitlines()[0][:200]}"
        except Exception as error:  # one failing configuration must not lose the others
            row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
        row["seconds"] = time.monotonic() - start
        with (out / BENCH_ROWS).open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        if plan.device == "cuda":
            torch.cuda.empty_cache()


def environment(plan: Plan) -> dict:
    """Versions and device facts that decide the numbers."""
    import torch

    facts = {"python": platform.python_version(), "torch": torch.__version__, "device": plan.device}
    for package in ("transformers", "timm", "diffusers", "open_clip", "accelerate", "peft"):
        try:
            facts[package] = __import__(package).__version__
        except Exception as error:  # report, do not fail: the tests step shows what breaks
            facts[package] = f"missing ({type(error).__name__})"
    if plan.device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / GIB, 1), cuda=torch.version.cuda,
                     tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32)
    else:
        facts["cpu"] = platform.processor() or platform.machine()
    return facts


# -- report ---------------------------------------------------------------------------------------
def read_rows(out: Path) -> list[dict]:
    path = out / BENCH_ROWS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def test_outcomes(log: Path) -> dict[str, str]:
    """``test id -> PASSED/FAILED/...`` from pytest's ``-v`` lines (written as each test ends)."""
    outcomes = {}
    if log.is_file():
        for match in re.finditer(r"^(tests/\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)", log.read_text(), re.M):
            outcomes[match.group(1)] = match.group(2)
    return outcomes


def _pct(flops: int | None, seconds: float | None, peak: float | None) -> str:
    if not flops or not seconds or not peak:
        return "n/a"
    return f"{100 * flops / seconds / (peak * 1e12):.1f}%"


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.1f}"


def bench_table(rows: list[dict], peak: float | None) -> str:
    lines = [
        "| reward | mode | batch | dtype | ckpt | fwd ms | fwd % bf16 peak | fwd+bwd ms | fwd+bwd % bf16 peak | fwd+bwd peak GiB | fwd GFLOP |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        label = r["reward"] if r.get("preset", r["reward"]) == r["reward"] else f"{r['reward']} ({r['preset']})"
        if "error" in r:
            lines.append(f"| {label} | {r['mode']} | {r['batch']} | {r['dtype']} | {'yes' if r['checkpointing'] else 'no'} "
                         f"| {r['error']} | | | | | |")
            continue
        peak_bytes = r.get("forward_backward_peak_bytes")
        lines.append(
            f"| {label} | {r['mode']} | {r['batch']} | {r['dtype']} | {'yes' if r['checkpointing'] else 'no'} "
            f"| {_ms(r['forward_s'])} | {_pct(r['forward_flops'], r['forward_s'], peak)} "
            f"| {_ms(r['forward_backward_s'])} | {_pct(r['forward_backward_flops'], r['forward_backward_s'], peak)} "
            f"| {'n/a' if peak_bytes is None else f'{peak_bytes / GIB:.3g}'} | {r['forward_flops'] / 1e9:.4g} |"
        )
    return "\n".join(lines)


def _find(rows: list[dict], **match) -> dict | None:
    for row in rows:
        if "error" not in row and all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def targets(rows: list[dict], peak: float | None, plan: Plan) -> list[str]:
    """One line per target: the measured value and whether it is met, or why it was not measured."""
    big = max(plan.batches)
    lines = []
    best = [r for r in rows if "error" not in r and r["reward"] == "aigc-vqa" and r["batch"] == big and r["dtype"] == "bf16"
            and not r["checkpointing"]]
    if best and peak:
        row = min(best, key=lambda r: r["forward_s"])
        fraction = row["forward_flops"] / row["forward_s"] / (peak * 1e12)
        verdict = "met" if fraction >= TARGET_PEAK_FRACTION else "NOT met"
        lines.append(f"- aigc-vqa bf16 forward at batch {big}: {100 * fraction:.1f}% of the bf16 matmul rate "
                     f"({row['mode']}; target >= {100 * TARGET_PEAK_FRACTION:.0f}%): {verdict}")
    else:
        lines.append(f"- aigc-vqa bf16 forward at batch {big}: not measured")
    for name in plan.rewards:
        for batch in plan.batches:
            fp32 = _find(rows, reward=name, mode="eager", batch=batch, dtype="fp32", checkpointing=False)
            bf16 = _find(rows, reward=name, mode="eager", batch=batch, dtype="bf16", checkpointing=False)
            if fp32 and bf16:
                speedup = fp32["forward_backward_s"] / bf16["forward_backward_s"]
                verdict = "met" if speedup >= TARGET_BF16_SPEEDUP else "NOT met"
                lines.append(f"- {name} batch {batch}: bf16 forward+backward speed-up over fp32 {speedup:.2f}x "
                             f"(target >= {TARGET_BF16_SPEEDUP:.0f}x): {verdict}")
        for dtype in plan.dtypes:
            plain = _find(rows, reward=name, mode="eager", batch=plan.checkpoint_batch, dtype=dtype, checkpointing=False)
            saved = _find(rows, reward=name, mode="eager", batch=plan.checkpoint_batch, dtype=dtype, checkpointing=True)
            if plain and saved and plain.get("forward_backward_peak_bytes") and saved.get("forward_backward_peak_bytes") is not None:
                cut = 1 - saved["forward_backward_peak_bytes"] / plain["forward_backward_peak_bytes"]
                verdict = "met" if cut >= TARGET_CHECKPOINT_SAVING else "NOT met"
                lines.append(f"- {name} {dtype} batch {plan.checkpoint_batch}: checkpointing cuts forward+backward peak "
                             f"memory by {100 * cut:.0f}% (target >= {100 * TARGET_CHECKPOINT_SAVING:.0f}%): {verdict}")
    return lines


def write_report(out: Path, state: dict, plan: Plan) -> None:
    """``gpu_check.md`` and ``gpu_check.json`` from everything measured so far (atomic renames)."""
    rows = read_rows(out)
    outcomes = test_outcomes(out / "pytest.log")
    peak = state.get("matmul", {}).get("tflops")
    counts = {kind: sum(1 for v in outcomes.values() if v == kind) for kind in ("PASSED", "FAILED", "ERROR", "SKIPPED")}
    lines = [
        f"# GPU check ({'dry run on the CPU, tiny presets' if plan.device == 'cpu' else 'paper-size rewards'})",
        "",
        f"Started {state['started']}; {time.monotonic() - state['t0']:.0f} s so far.",
        "",
        "## Environment",
        "",
        *(f"- {key}: {value}" for key, value in state.get("environment", {}).items()),
        "",
        "## Steps",
        "",
        "| step | status | seconds | cap |",
        "|---|---|---|---|",
        *(f"| {s['step']} | {s['status']} | {s['seconds']:.0f} | {s['cap']:.0f} |" for s in state["steps"]),
        "",
        f"## Tests marked cuda: {counts['PASSED']} passed, {counts['FAILED']} failed, {counts['ERROR']} errors, "
        f"{counts['SKIPPED']} skipped",
        "",
        *(f"- {outcome}: `{test}`" for test, outcome in outcomes.items() if outcome not in ("PASSED", "SKIPPED")),
        "- details: pytest.log" if counts["FAILED"] + counts["ERROR"] else
        "- every test that ran passed" if counts["PASSED"] else "- no test ran (no CUDA GPU: they skip)",
        "",
        "## bf16 matmul rate",
        "",
        f"{peak:.1f} TFLOP/s ({state['matmul']['side']}^3 bf16 product)" if peak else "not measured",
        "",
        "## Rewards (random weights, frozen; forward+backward into the pixels)",
        "",
        "Frames and side per reward: " + ", ".join(f"{name} {f}x{s}x{s}" for name, (f, s) in plan.videos.items())
        + f"; best of {plan.iterations} timed passes; % of the bf16 matmul rate above (fp32 rows too).",
        "",
        bench_table(rows, peak),
        "",
        "## Targets (reported, not asserted)",
        "",
        *targets(rows, peak, plan),
        "",
    ]
    compile_status = {r["reward"]: r["compile_status"] for r in rows if r.get("compile_status")}
    if compile_status:
        lines += ["## Compiled backbones", "", *(f"- {name}: {status}" for name, status in compile_status.items()), ""]
    write_atomic(out / REPORT, "\n".join(lines))
    summary = {**{k: v for k, v in state.items() if k != "t0"}, "tests": outcomes, "bench": rows}
    write_atomic(out / RESULTS, json.dumps(summary, indent=2, default=str))


def write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


# -- the check ------------------------------------------------------------------------------------
def check(args: argparse.Namespace, plan: Plan) -> int:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name in (BENCH_ROWS, "pytest.log", "steps.log"):
        (out / name).unlink(missing_ok=True)
    state = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "t0": time.monotonic(), "steps": [],
             "environment": environment(plan), "budget_s": args.budget}
    write_report(out, state, plan)

    def step(name: str, command: list[str], cap: float, log: str = "steps.log") -> None:
        left = args.budget - (time.monotonic() - state["t0"])
        cap = min(cap, left)
        if cap < 5:
            state["steps"].append({"step": name, "status": "skipped: the budget is spent", "seconds": 0, "cap": cap})
        else:
            status, seconds = run_capped(command, cap, out / log)
            state["steps"].append({"step": name, "status": status, "seconds": seconds, "cap": cap})
        write_report(out, state, plan)

    per_test_cap = ["--timeout=150"] if importlib.util.find_spec("pytest_timeout") else []
    pytest_command = [sys.executable, "-m", "pytest", "-v", "-m", "cuda", "-p", "no:cacheprovider", *per_test_cap, *TEST_FILES]
    step("tests", pytest_command, plan.caps["tests"], log="pytest.log")
    step("matmul", worker_command(args, "matmul"), plan.caps["matmul"])
    matmul_file = out / "matmul.json"
    if matmul_file.is_file():
        state["matmul"] = json.loads(matmul_file.read_text())
        matmul_file.unlink()
        write_report(out, state, plan)
    eager_share = {"aigc-vqa": 0.5, "dover": 0.2, "pcqa-convnext-s": 0.3}
    for name in plan.rewards:
        step(f"eager {name}", worker_command(args, "eager", name), plan.caps["eager"] * eager_share[name])
    # compiled: the smaller graphs first (a paper-size aigc-vqa compiles for minutes); each gets a share of what is left
    for name, share_of_rest in (("dover", 0.4), ("pcqa-convnext-s", 0.5), ("aigc-vqa", 1.0)):
        left = args.budget - (time.monotonic() - state["t0"])
        step(f"compiled {name}", worker_command(args, "compiled", name), left * share_of_rest)
    print((out / REPORT).read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.md, gpu_check.json and the logs")
    parser.add_argument("--dry-run", action="store_true", help="every step on the tiny presets on the CPU")
    parser.add_argument("--budget", type=float, help="seconds for the whole check (default 420 on a GPU, 3600 dry)")
    parser.add_argument("--worker", choices=("matmul", "eager", "compiled"), help=argparse.SUPPRESS)
    parser.add_argument("--reward", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    plan = DRY_PLAN if args.dry_run else GPU_PLAN
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.worker == "matmul":
        write_atomic(args.out / "matmul.json", json.dumps(matmul_rate(plan)))
        return 0
    if args.worker:
        bench_worker(args.reward, args.worker == "compiled", plan, args.out)
        return 0
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            parser.error("no CUDA GPU here: run with --dry-run to exercise the steps on the CPU")
    args.budget = args.budget or (3600 if args.dry_run else 420)
    return check(args, plan)


if __name__ == "__main__":
    sys.exit(main())
