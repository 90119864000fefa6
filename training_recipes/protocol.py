"""The T2VQA-DB protocol: train on each of N random 80/20 splits and report the mean test metrics.

``python -m training_recipes.protocol RECIPE [RECIPE ...] [--splits 10] [key=value ...]`` runs the
recipes in order on every split (stage after stage: each stage finds its predecessor under the
split's own ``run_root``), takes the last recipe's best-checkpoint metrics, and writes
``protocol.json`` with every split's metrics and their mean and standard deviation. Finished
splits are not trained again, so an interrupted protocol resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from reward.checkpoints import atomic_write_text
from reward.metrics import METRIC_NAMES

from .config import load_config, split_cli
from .evaluation import finite_or_none, format_metrics
from .train import INTERRUPTED_EXIT_CODE, train

PROTOCOL_NAME = "protocol.json"


def run_protocol(recipes: Sequence[str], overrides: Sequence[str] = (), *, num_splits: int = 10) -> dict:
    """Train ``recipes`` on splits 0..num_splits-1; returns ``{"splits": [...], "mean": {...}, "std": {...}}``.

    Stops early (``"interrupted": True``) when a run is interrupted; calling again resumes it.
    """
    if not recipes:
        raise ValueError("name at least one recipe")
    root = Path(load_config(recipes[-1], overrides).run_root)
    per_split: list[dict] = []
    for index in range(num_splits):
        split_overrides = [*overrides, f"data.split.index={index}", f"data.split.num_splits={num_splits}", f"run_root={root / f'split_{index}'}"]
        for recipe in recipes:
            result = train(recipe, split_overrides)
            if result.interrupted:
                return {"interrupted": True, "splits": per_split}
        if result.metrics is None:
            raise RuntimeError(f"{result.output_dir} produced no evaluated checkpoint; check eval.every and train.epochs")
        per_split.append({name: result.metrics[name] for name in METRIC_NAMES})
    summary = {
        "recipes": list(recipes),
        "splits": per_split,
        "mean": {name: statistics.fmean(split[name] for split in per_split) for name in METRIC_NAMES},
        "std": {name: statistics.pstdev(split[name] for split in per_split) for name in METRIC_NAMES},
    }
    clean = {**summary, "splits": [{k: finite_or_none(v) for k, v in s.items()} for s in per_split]}
    atomic_write_text(root / PROTOCOL_NAME, json.dumps(clean, indent=2))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    arguments, overrides = split_cli(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m training_recipes.protocol", description=__doc__.strip().splitlines()[0])
    parser.add_argument("recipes", nargs="+", help="recipes run in order on every split (e.g. the three AIGC-VQA stages)")
    parser.add_argument("--splits", type=int, default=10)
    args = parser.parse_args(arguments)
    summary = run_protocol(args.recipes, overrides, num_splits=args.splits)
    if summary.get("interrupted"):
        return INTERRUPTED_EXIT_CODE
    print(f"mean over {args.splits} splits:\n{format_metrics(summary['mean'])}")
    print("std: " + ", ".join(f"{name} {summary['std'][name]:.4f}" for name in METRIC_NAMES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
