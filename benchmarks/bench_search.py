"""Inference-time search: mean best reward versus denoiser calls per prompt, for every strategy at equal
budgets, on the tiny random pipelines of every family with two rewards (colorfulness, which the noise
moves a lot, and the random-weight aigc-vqa-tiny), over several prompts and seeds.

    pip install -e ".[bench]"          # matplotlib, for the plot
    python benchmarks/bench_search.py --write --jobs 2

``--measure-only DIR`` writes each (family, reward) pair's numbers to ``DIR`` as it finishes (no
plot, so it runs where matplotlib is missing); ``--from DIR`` then plots and tabulates them.
Budgets are whole videos' worth of calls (``--videos`` x ``--steps``). best-of-N is run once at the
largest budget; its curve takes the first ``n`` candidates (the same seeds as a run with ``n``).
The other strategies run once per budget up to half the largest (the target: best-of-N's reward at
the largest budget with at most half its calls), with their default settings. For each point: the mean over
prompts x seeds of the best finished video's reward, with its standard error. Writes a JSON of every
number and a PNG of the curves next to RESULTS.md; ``--write`` puts the table under "Inference-time
search" in benchmarks/RESULTS.md. The defaults of the strategies were chosen on seeds 0-2 of other
prompts; the table uses ``--seeds`` (default 1000, 2000, 3000) and ``PROMPTS`` below.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

import reward
from integrations.diffusers import TINY_FAMILIES, build_tiny_pipeline, tiny_generation_kwargs
from integrations.diffusers.search import search
from integrations.diffusers.search_strategies import EarlyPruningSearch, NoiseSearch, Resample
from results_md import cpu_name, write_section
from reward.checkpoints import atomic_path, atomic_write_text

HEADING = "## Inference-time search"
HERE = Path(__file__).resolve().parent
PROMPTS = ["a dog running on a beach", "fireworks over a harbour", "a bowl of fruit on a table", "a train in the mountains"]
REWARDS = ("colorfulness", "aigc-vqa-tiny")
#: The random weights of aigc-vqa-tiny, as examples/rerank.py --tiny builds it.
REWARD_SEED = 0


def load_reward(name: str) -> reward.VideoReward:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(REWARD_SEED)
        return reward.load(name, pretrained=False)


def strategies(steps: int) -> dict[str, Any]:
    return {"early-pruning": EarlyPruningSearch(step=max(1, steps // 4)), "resample": Resample(), "noise-search": NoiseSearch()}


def measure(family: str, reward_name: str, steps: int, videos: list[int], seeds: list[int], batch_size: int) -> dict[str, Any]:
    """Every strategy's best reward per (seed, prompt) and the calls it spent, at every budget."""
    torch.set_num_threads(1)
    pipe, model = build_tiny_pipeline(family), load_reward(reward_name)
    generation = dict(tiny_generation_kwargs(family), num_inference_steps=steps)
    common = dict(seed=0, batch_size=batch_size, progress=False, **generation)
    points: dict[str, dict[int, dict[str, list[float]]]] = {}
    start = time.perf_counter()
    for seed in seeds:
        common["seed"] = seed
        plain = search(pipe, PROMPTS, model, strategy="best-of-n", budget=max(videos) * steps, **common)
        for n in videos:
            point = points.setdefault("best-of-n", {}).setdefault(n, {"best": [], "calls": []})
            for i in range(len(PROMPTS)):
                point["best"].append(max(c.score for c in plain.for_prompt(i) if c.candidate_index < n and c.finished))
                point["calls"].append(n * steps)
        for name, strategy in strategies(steps).items():
            for n in [n for n in videos if 2 * n <= max(videos)]:
                result = search(pipe, PROMPTS, model, strategy=strategy, budget=n * steps, **common)
                point = points.setdefault(name, {}).setdefault(n, {"best": [], "calls": []})
                point["best"] += [c.score for c in result.best]
                point["calls"] += [result.spend[i].denoiser_calls for i in range(len(PROMPTS))]
    return {"family": family, "reward": reward_name, "points": points, "seconds": time.perf_counter() - start,
            "machine": f"torch {torch.__version__}, {cpu_name()}", "steps": steps, "videos": videos, "seeds": seeds}


def measure_into(folder: Path | None, *work: Any) -> dict[str, Any]:
    """``measure``, saved to ``folder`` as soon as it is done (a run cut short keeps the finished pairs)."""
    run = measure(*work)
    if folder is not None:
        atomic_write_text(folder / f"{run['family']}__{run['reward']}.json", json.dumps(run))
    return run


def summarise(points: dict[str, dict[int, dict[str, list[float]]]]) -> dict[str, dict[int, dict[str, float]]]:
    """Mean best reward, its standard error and the mean calls of each strategy at each budget."""
    table: dict[str, dict[int, dict[str, float]]] = {}
    for name, budgets in points.items():
        for n, point in budgets.items():
            best = point["best"]
            error = statistics.stdev(best) / math.sqrt(len(best)) if len(best) > 1 else 0.0
            table.setdefault(name, {})[int(n)] = {"mean": statistics.fmean(best), "stderr": error,
                                                  "calls": statistics.fmean(point["calls"])}
    return table


SEARCHERS = ("resample", "noise-search")


def losses(table: dict[str, dict[int, dict[str, float]]], name: str) -> list[int]:
    """The budgets (videos) at which strategy ``name``'s mean best reward is not above best-of-N's."""
    return [n for n in sorted(table[name]) if table[name][n]["mean"] <= table["best-of-n"][n]["mean"]]


def first_reaching(table: dict[str, dict[int, dict[str, float]]]) -> tuple[int, str] | None:
    """The smallest budget (and strategy) at which resample or noise-search reaches best-of-N's largest-budget reward."""
    target = table["best-of-n"][max(table["best-of-n"])]["mean"]
    reached = [(n, name) for n in sorted(table["resample"]) for name in SEARCHERS if table[name][n]["mean"] >= target]
    return reached[0] if reached else None


def verdicts(table: dict[str, dict[int, dict[str, float]]]) -> tuple[str, str]:
    """The two target cells: who beats best-of-N at every equal budget, and who reaches its largest-budget reward."""
    winners = [name for name in SEARCHERS if not losses(table, name)]
    equal = ", ".join(winners) if winners else "**missed**: " + "; ".join(
        f"{name} not at {', '.join(map(str, losses(table, name)))} videos" for name in SEARCHERS)
    reached = first_reaching(table)
    if reached is None:
        return equal, f"**missed**: not within {max(table['resample'])} videos"
    return equal, f"{reached[1]} at {reached[0]} videos"


def summary(runs: list[dict[str, Any]]) -> str:
    """One sentence per target: on how many (family, reward) pairs it was met."""
    beaten = [run for run in runs if any(not losses(run["table"], name) for name in SEARCHERS)]
    reached = [run for run in runs if first_reaching(run["table"]) is not None]
    missed = lambda kept: ", ".join(f"{r['family']} / {r['reward']}" for r in runs if r not in kept) or "none"
    return (f"Targets: resample or noise-search beats best-of-N's mean best reward at every equal budget on "
            f"{len(beaten)} of {len(runs)} (family, reward) pairs (missed: {missed(beaten)}), and reaches best-of-N's "
            f"largest-budget reward with at most half its calls on {len(reached)} of {len(runs)} (missed: {missed(reached)}).")


def plot(runs: list[dict[str, Any]], path: Path, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(run["family"] for run in runs))
    rewards = list(dict.fromkeys(run["reward"] for run in runs))
    figure, axes = plt.subplots(len(rewards), len(families), figsize=(3.2 * len(families), 3.0 * len(rewards)), squeeze=False)
    for run in runs:
        axis = axes[rewards.index(run["reward"])][families.index(run["family"])]
        for name, budgets in run["table"].items():
            ns = sorted(budgets)
            mean = [budgets[n]["mean"] for n in ns]
            error = [budgets[n]["stderr"] for n in ns]
            calls = [budgets[n]["calls"] for n in ns]
            axis.plot(calls, mean, marker="o", markersize=3, label=name)
            axis.fill_between(calls, [m - e for m, e in zip(mean, error)], [m + e for m, e in zip(mean, error)], alpha=0.2)
        axis.set_xscale("log", base=2)
        axis.set_title(f"{run['family']} / {run['reward']}", fontsize=9)
        axis.set_xlabel(f"denoiser calls per prompt ({steps} per video)", fontsize=8)
        axis.tick_params(labelsize=7)
    axes[0][0].set_ylabel("mean best reward (+- s.e.)", fontsize=8)
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=80, format="png")
    plt.close(figure)


def markdown(runs: list[dict[str, Any]]) -> str:
    steps, videos, seeds = runs[0]["steps"], runs[0]["videos"], runs[0]["seeds"]
    largest = max(videos)
    middle = max(n for n in videos if 2 * n <= largest)
    names = ["best-of-n", "early-pruning", "resample", "noise-search"]
    lines = [
        f"`python benchmarks/bench_search.py --write`: tiny random pipelines, {steps} steps per video, "
        f"{len(PROMPTS)} prompts x seeds {seeds} ({len(PROMPTS) * len(seeds)} searches per point), budgets of "
        f"{videos} videos' worth of denoiser calls per prompt, default strategy settings "
        f"({', '.join(f'{n}: {s}' for n, s in strategies(steps).items())}); {runs[0]['machine']}, "
        f"one thread per (family, reward) pair. "
        "Each cell: mean best reward +- standard error over the searches. Curves: `search_curves.png`; every number: "
        "`search_curves.json`. The models are random: the numbers say which strategy finds higher rewards for the "
        "calls, not how good the videos look.",
        "",
        summary(runs),
        "",
        "![mean best reward vs denoiser calls](search_curves.png)",
        "",
        f"| family | reward | " + " | ".join(f"{n} @ {middle}" for n in names) + f" | best-of-n @ {largest} "
        f"| beats best-of-N at every equal budget up to {middle} videos | reaches best-of-N @ {largest} |",
        "|---|---|" + "---|" * (len(names) + 3),
    ]
    for run in runs:
        table = run["table"]
        cells = [f"{table[n][middle]['mean']:.4g} +- {table[n][middle]['stderr']:.2g}" for n in names]
        equal, reached = verdicts(table)
        lines.append(f"| {run['family']} | {run['reward']} | " + " | ".join(cells)
                     + f" | {table['best-of-n'][largest]['mean']:.4g} | {equal} | {reached} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=list(TINY_FAMILIES), choices=TINY_FAMILIES)
    parser.add_argument("--rewards", nargs="+", default=list(REWARDS))
    parser.add_argument("--steps", type=int, default=4, help="denoising steps per video (default 4)")
    parser.add_argument("--videos", type=int, nargs="+", default=[2, 4, 8, 16], help="budgets, in whole videos")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 2000, 3000],
                        help="base seeds, far apart: candidate j of a run with seed s uses s + j, so near seeds share noises")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=1, help="(family, reward) pairs measured in parallel processes")
    parser.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    parser.add_argument("--measure-only", type=Path, help="only measure, one JSON per pair into this folder")
    parser.add_argument("--from", dest="source", type=Path, help="plot and tabulate the JSONs of --measure-only")
    args = parser.parse_args()
    if args.source is not None:
        found = {(run["family"], run["reward"]): run for run in map(json.loads, map(Path.read_text, args.source.glob("*.json")))}
        runs = [found[(family, name)] for family in args.families for name in args.rewards if (family, name) in found]
    else:
        if args.measure_only is not None:
            args.measure_only.mkdir(parents=True, exist_ok=True)
        work = [(args.measure_only, family, name, args.steps, args.videos, args.seeds, args.batch_size)
                for family in args.families for name in args.rewards]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(measure_into, *zip(*work)))
        if args.measure_only is not None:
            return
    for run in runs:
        run["table"] = summarise(run["points"])
        print(f"{run['family']} / {run['reward']}: {run['seconds']:.0f} s", flush=True)
    atomic_write_text(HERE / "search_curves.json", json.dumps(runs, indent=1))
    plot(runs, HERE / "search_curves.png", runs[0]["steps"])
    text = markdown(runs)
    print(text)
    if args.write:
        write_section(HEADING, text)


if __name__ == "__main__":
    main()
