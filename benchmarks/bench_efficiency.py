"""How close the rewards run to the machine's matrix-product rate: FLOPs per call, time, achieved GFLOP/s and its
percent of a large matmul's rate measured in the same run and dtype, and peak memory, per reward and
configuration (fp32 / bf16 compute, bf16 weight storage, checkpointing, eager / compiled backbones, glibc's
allocator default or told to keep freed memory).

    python benchmarks/bench_efficiency.py --write

Every configuration runs in a fresh process through ``reward.bench.bench_reward`` (what ``aigc-reward bench``
runs) with random weights (the cost does not depend on their values), parameters frozen, eval mode, one video;
FLOPs are counted once per reward and checkpointing setting (``FlopCounterMode``, executed arithmetic:
checkpointing's recomputation included). On a shared CPU wall-clock time stretches with the other jobs, so the
percentages are also given on CPU time (CPU seconds / threads, for the reward and for the matmul alike).

``--baseline FILE`` adds the numbers of an earlier run (``--json FILE`` on the code before a change) as "before"
columns. ``--kept-allocator`` rows run with ``GLIBC_TUNABLES`` telling glibc to keep freed memory (no mmap, no
trim): CPU PyTorch then stops paying page faults for every large tensor. ``--profile KEY ...`` adds, for those
configurations, where one no-grad forward spends its CPU time (``torch.profiler``, self time per op).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass

import torch

from results_md import cpu_name, write_section

HEADING = "## Efficiency: FLOPs and share of the matrix-product rate"
KEPT_ALLOCATOR = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
#: oneDNN limited to the AVX-512 bf16 instructions: a CPU whose AMX is hidden (bf16 matmuls at ~0.6x fp32).
NO_AMX_ISA = "AVX512_CORE_BF16"
FORWARD = ("forward",)
BOTH = ("forward", "forward_backward")


@dataclass(frozen=True)
class Config:
    """One measured configuration of one reward."""

    reward: str
    frames: int
    dtype: str = "fp32"
    passes: tuple[str, ...] = BOTH
    checkpointing: bool = False
    compiled: bool = False
    weights_dtype: str | None = None
    kept_allocator: bool = False

    @property
    def label(self) -> str:
        parts = [self.dtype + (" weights" if self.weights_dtype else "")]
        parts += ["checkpointing"] * self.checkpointing + ["compiled"] * self.compiled + ["kept allocator"] * self.kept_allocator
        return " + ".join(parts)

    @property
    def key(self) -> str:
        return f"{self.reward}: {self.label}"


def plan(rewards: list[str], compiled: bool) -> list[Config]:
    """What the table measures: the targets' rows for dover and aigc-vqa, fp32 vs bf16 forwards for the others."""
    configs = []
    for reward in rewards:
        frames = 32 if reward == "dover" else 16
        if reward in ("dover", "aigc-vqa"):
            configs += [Config(reward, frames), Config(reward, frames, "bf16"), Config(reward, frames, "bf16", weights_dtype="bf16"),
                        Config(reward, frames, passes=("forward_backward",), checkpointing=True),
                        Config(reward, frames, kept_allocator=True)]
            configs += [Config(reward, frames, passes=FORWARD, compiled=True)] if compiled else []
        else:
            configs += [Config(reward, frames, passes=FORWARD), Config(reward, frames, "bf16", passes=FORWARD)]
    return configs


def offline_tokenizer():
    """A bert-base-sized WordPiece vocabulary built in memory (tokenising costs what the real one costs)."""
    from transformers import BertTokenizer

    from reward.imagereward.tokenizer import ImageRewardTokenizer

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"]
    vocabulary += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    vocabulary += [f"[unused{i}]" for i in range(30522 - len(vocabulary))]
    return ImageRewardTokenizer(BertTokenizer(vocab={t: i for i, t in enumerate(vocabulary)}))


def load_reward(config: Config):
    """The reward at full size with random weights, frozen, offline (BLIP rewards get an in-memory tokenizer)."""
    import reward
    from reward.imagereward.tokenizer import HUB_TOKENIZER

    model = reward.load(config.reward, pretrained=False)
    for scorer in (getattr(model, "alignment", None), getattr(model, "scorer", None)):
        if getattr(scorer, "tokenizer_source", None) == HUB_TOKENIZER:
            scorer.set_tokenizer(offline_tokenizer())
    model.requires_grad_(False)
    return model.store_backbone_weights(config.weights_dtype) if config.weights_dtype else model


def forward_profile(model, config: Config, top: int = 8) -> list[tuple[str, float]]:
    """Share of one no-grad forward's self CPU time per op, the ``top`` largest (after the bench's warm-up)."""
    from reward.bench import BenchInputs

    model.set_compute_dtype(None if config.dtype == "fp32" else config.dtype)
    step = BenchInputs.random(model.device, frames=config.frames).forward(model)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        step()
    events = [event for event in profiler.key_averages() if event.self_cpu_time_total > 0]
    total = sum(event.self_cpu_time_total for event in events)
    ranked = sorted(events, key=lambda event: event.self_cpu_time_total, reverse=True)[:top]
    return [(event.key, event.self_cpu_time_total / total) for event in ranked]


def run_worker(config: Config, flops: list | None, iterations: int, profile: bool = False) -> dict:
    """One configuration in this process: the bench result, parameter bytes, (if not given) the FLOP counts and
    (with ``profile``) the forward's CPU time per op."""
    from reward.bench import BenchInputs, bench_reward, matmul_rate, reward_flops

    model = load_reward(config)
    device = model.device
    if flops is None:
        inputs = BenchInputs.random(device, frames=config.frames)
        flops = list(reward_flops(model, inputs, checkpointing=config.checkpointing, passes=config.passes))
    if config.compiled:
        model.compile()
    result = bench_reward(model, frames=config.frames, dtype=config.dtype, checkpointing=config.checkpointing,
                          iterations=iterations, compiled=config.compiled, flops=tuple(flops), passes=config.passes)
    return {
        "result": result.as_dict(),
        "flops": flops,
        "parameter_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "matmul": asdict(matmul_rate(config.dtype, device)),
        "threads": torch.get_num_threads(),
        "profile": forward_profile(model, config) if profile else None,
    }


def measure(config: Config, args: argparse.Namespace, flops: list | None) -> dict:
    env = dict(os.environ, **({"GLIBC_TUNABLES": KEPT_ALLOCATOR} if config.kept_allocator else {}))
    if args.no_amx:
        env["ONEDNN_MAX_CPU_ISA"] = NO_AMX_ISA
    command = [sys.executable, __file__, "--worker", json.dumps(asdict(config)), "--threads", str(args.threads),
               "--iterations", str(args.iterations)] + (["--flops", json.dumps(flops)] if flops else [])
    command += ["--profile", config.key] if config.key in (args.profile or []) else []
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
    if done.returncode:
        raise RuntimeError(f"{config.key} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def percent(flops: int | None, seconds: float | None, rate: float | None, threads: int = 1) -> float | None:
    if not flops or not seconds or not rate:
        return None
    return 100 * flops * threads / seconds / 1e9 / rate


def cell(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def row_numbers(measured: dict) -> dict:
    """Per pass: time (wall, CPU), GFLOP, GFLOP/s and percent of the matmul rate (wall and CPU-time basis), peak."""
    result, rate, threads = measured["result"], measured["matmul"], measured["threads"]
    out = {}
    for kind in ("forward", "forward_backward"):
        flops, wall, cpu = result[f"{kind}_flops"], result[f"{kind}_s"], result[f"{kind}_cpu_s"]
        out[kind] = {
            "wall": wall, "cpu": cpu, "gflop": None if flops is None else flops / 1e9,
            "gflops": None if not flops or not wall else flops / wall / 1e9,
            "percent": percent(flops, wall, rate["gflops"]), "percent_cpu": percent(flops, cpu, rate["cpu_gflops"], threads),
            "peak": result["forward_peak_bytes" if kind == "forward" else "forward_backward_peak_bytes"],
        }
    return out


#: Targets of issue #12 on this CPU: (configuration, pass, least percent of the matmul rate on CPU time).
RATE_TARGETS = (("dover: fp32", "forward", 50), ("aigc-vqa: fp32", "forward_backward", 70))
#: Least bf16 / fp32 forward speed on a CPU without AMX, for every reward.
NO_AMX_SPEED_TARGET = 0.45


def verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


def summary(results: dict[str, dict], baseline: dict[str, dict], no_amx: bool) -> list[str]:
    """bf16 / fp32 forward speeds per reward and the targets the measured rows decide."""
    lines = []
    speeds = {key.split(": ")[0]: results[key.replace(": bf16", ": fp32")]["result"]["forward_cpu_s"] / measured["result"]["forward_cpu_s"]
              for key, measured in results.items()
              if key.endswith(": bf16") and key.replace(": bf16", ": fp32") in results and measured["result"]["forward_cpu_s"]}
    if speeds:
        line = "- bf16 / fp32 forward speed (CPU time): " + ", ".join(f"`{reward}` {speed:.2f}x" for reward, speed in speeds.items())
        if no_amx:
            line += f" (target without AMX: >= {NO_AMX_SPEED_TARGET}x for every reward: {verdict(min(speeds.values()) >= NO_AMX_SPEED_TARGET)})"
        lines.append(line + ".")
    for key, kind, target in RATE_TARGETS:
        if key in results and not no_amx:
            value = row_numbers(results[key])[kind]["percent_cpu"]
            if value is not None:
                lines.append(f"- `{key}` {kind.replace('_', '+')}: {value:.0f}% of the fp32 matmul rate on CPU time "
                             f"(target >= {target}%: {verdict(value >= target)}).")
    for key, before in baseline.items():
        now, was = results.get(key, {}).get("result", {}).get("forward_backward_peak_bytes"), before["result"].get("forward_backward_peak_bytes")
        if now and was:
            lines.append(f"- `{key}` forward+backward peak: {was / 2**30:.2f} GiB before, {now / 2**30:.2f} GiB now "
                         f"(target: not above before: {verdict(now <= was)}).")
    return lines


def table(keys: list[str], results: dict[str, dict], baseline: dict[str, dict], context: dict) -> str:
    gib = 2**30
    rates = ", ".join(f"{name} {context[f'mm_{name}']:.0f}" for name in ("fp32", "bf16") if not math.isnan(context[f"mm_{name}"]))
    lines = [
        f"`{context['command']}` on {context['date']}: {context['machine']}, torch {torch.__version__}, {context['threads']} "
        f"torch threads; load average (1, 5, 15 min) {context['load_before']} before and {context['load_after']} after "
        f"(a shared machine: wall-clock times stretch with the other jobs, CPU-time percentages much less). One video "
        "per call: `dover` 32 frames and `aigc-vqa`, `imagereward`, `pcqa-*` 16 frames at 224x224; random weights, "
        "frozen; best of the timed passes. GFLOP: executed per call (FlopCounterMode). % mm: achieved GFLOP/s over a "
        f"2048x2048 matmul's rate measured in the same worker and dtype ({rates} GFLOP/s on CPU time), on wall-clock / "
        "CPU time. "
        "Peak: growth of the process's peak resident memory during the passes (weights excluded)."
        + (f" Run as on a CPU without AMX: oneDNN limited to `{NO_AMX_ISA}` (`ONEDNN_MAX_CPU_ISA`)." if context["no_amx"] else ""),
        "",
        "| reward: configuration | fwd GFLOP | fwd s (wall / CPU) | fwd % mm (wall / CPU) | fwd+bwd GFLOP | "
        "fwd+bwd s (wall / CPU) | fwd+bwd % mm (wall / CPU) | fwd peak GiB | fwd+bwd peak GiB | weights GiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def add_row(label: str, measured: dict) -> None:
        numbers = row_numbers(measured)
        cells = []
        for kind in ("forward", "forward_backward"):
            n = numbers[kind]
            cells += [cell(n["gflop"], 0), f"{cell(n['wall'])} / {cell(n['cpu'])}",
                      f"{cell(n['percent'], 0, '%')} / {cell(n['percent_cpu'], 0, '%')}"]
        peaks = [cell(None if numbers[k]["peak"] is None else numbers[k]["peak"] / gib, 2) for k in ("forward", "forward_backward")]
        lines.append(f"| {label} | " + " | ".join(cells + peaks + [f"{measured['parameter_bytes'] / gib:.2f}"]) + " |")

    for key in keys:
        if key in baseline:
            add_row(f"{key} (before)", baseline[key])
        if key in results:
            add_row(key, results[key])
    lines += [""] + summary(results, baseline, context["no_amx"])
    for key, measured in results.items():
        if measured.get("profile"):
            shares = ", ".join(f"`{name}` {share:.0%}" for name, share in measured["profile"])
            lines += ["", f"Where `{key}` spends one forward's CPU time (torch.profiler, self time per op, largest first): {shares}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rewards", nargs="+", default=["dover", "aigc-vqa", "imagereward", "pcqa-convnext-s",
                                                           "pcqa-efficientvit-l", "pcqa-eva02-b"])
    parser.add_argument("--only", nargs="+", help="measure only these configuration keys (e.g. 'dover: fp32')")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=1, help="timed passes of each kind (best reported)")
    parser.add_argument("--forward-only", action="store_true", help="time only the no-grad forward of every configuration")
    parser.add_argument("--no-amx", action="store_true",
                        help=f"run as on a CPU without AMX: oneDNN limited to {NO_AMX_ISA} (ONEDNN_MAX_CPU_ISA)")
    parser.add_argument("--heading", default=HEADING, help="section of RESULTS.md to write")
    parser.add_argument("--compiled", action="store_true", help="add compiled-backbone rows (compiling takes minutes here)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per configuration")
    parser.add_argument("--json", help="also write the raw results to this JSON file")
    parser.add_argument("--baseline", help="raw results of an earlier run (--json) shown as 'before' rows")
    parser.add_argument("--from-json", help="no measuring: make the table from the raw results of a run (--json)")
    parser.add_argument("--write", action="store_true", help="replace this benchmark's section of benchmarks/RESULTS.md")
    parser.add_argument("--profile", nargs="+", help="configuration keys whose forward is also profiled (e.g. 'dover: fp32')")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--flops", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        config = Config(**{**json.loads(args.worker), "passes": tuple(json.loads(args.worker)["passes"])})
        flops = json.loads(args.flops) if args.flops else None
        print(json.dumps(run_worker(config, flops, args.iterations, profile=bool(args.profile))))
        return

    baseline = json.load(open(args.baseline))["results"] if args.baseline else {}
    if args.from_json:
        run = json.load(open(args.from_json))
        results, context = run["results"], run["context"]
    else:
        results, context = measure_all(args)
    body = table(list(results), results, baseline, context)
    print(body)
    if args.write:
        write_section(args.heading, body)


def measure_all(args: argparse.Namespace) -> tuple[dict[str, dict], dict]:
    """Every planned configuration in its own worker process: raw results by key, and the run's context."""
    configs = [c for c in plan(args.rewards, args.compiled) if not args.only or c.key in args.only]
    if args.forward_only:
        configs = [dataclasses.replace(c, passes=FORWARD) for c in configs]
    context = {"load_before": ", ".join(f"{v:.1f}" for v in os.getloadavg()), "threads": args.threads, "no_amx": args.no_amx,
               "date": datetime.date.today().isoformat(), "command": "python benchmarks/bench_efficiency.py " + shlex.join(sys.argv[1:]),
               "machine": f"{cpu_name()} ({os.cpu_count()} cores, {platform.machine()})"}
    results, flops = {}, {}
    for config in configs:
        known = flops.get((config.reward, config.checkpointing))
        reuse = known if known and all(known[BOTH.index(kind)] is not None for kind in config.passes) else None
        measured = measure(config, args, reuse)
        if reuse is None:
            flops[(config.reward, config.checkpointing)] = measured["flops"]
        results[config.key] = measured
        print(config.key, json.dumps(row_numbers(measured)), flush=True)
    context["load_after"] = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    rates = {m["matmul"]["dtype"]: m["matmul"]["cpu_gflops"] for m in results.values()}
    context["mm_fp32"], context["mm_bf16"] = rates.get("fp32", float("nan")), rates.get("bf16", float("nan"))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"context": context, "results": results}, handle, indent=1)
    return results, context


if __name__ == "__main__":
    main()
