"""Combine trained PCQA members into one z-normalised ensemble.

``python -m training_recipes.ensemble MEMBER [MEMBER ...] --output DIR [--flip-tta] [key=value ...]``

Each MEMBER is a PCQA run folder (its ``best/``) or a ``save_pretrained`` folder. The members'
prediction statistics (mean, std) are computed on the training part of the data their recipe
used (or ``--stats-split``), stored in the ensemble, which is saved in the native format and
scored on ``--split`` (default: test).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import DataLoader

from reward.base import VideoReward
from reward.checkpoints import atomic_write_text

from .checkpointing import write_dir_atomically
from .config import RUN_CONFIG_NAME, load_config, save_config, split_cli
from .data.from_config import PARTS, build_data
from .evaluate import evaluate_checkpoint, locate_checkpoint
from .evaluation import format_metrics
from .session import accelerator_session, compute_dtype

STATISTICS_NAME = "ensemble_statistics.json"


def build_ensemble(
    members: Sequence[str | Path],
    output: str | Path,
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    flip_tta: bool = False,
    stats_split: str = "train",
    split: str = "test",
) -> dict:
    """Ensemble ``members``, store their statistics over ``stats_split``, save to ``output``, score ``split``.

    Returns ``{"statistics": {"mean", "std", "count"}, "metrics": {...}}``.
    """
    from reward.pcqa import PCQAEnsemble, compute_ensemble_statistics

    folders = [locate_checkpoint(Path(member).expanduser()) for member in members]
    if config is None:
        if folders[0][1] is None:
            raise FileNotFoundError(f"no {RUN_CONFIG_NAME} next to {folders[0][0]}; pass --config RECIPE for the data")
        config = folders[0][1] / RUN_CONFIG_NAME
    cfg = load_config(config, overrides)
    ensemble = PCQAEnsemble.from_members([VideoReward.from_pretrained(weights) for weights, _ in folders], flip_tta=flip_tta)
    data = build_data(cfg.data, seed=cfg.seed)
    loader = DataLoader(data.dataset(stats_split), batch_size=cfg.train.eval_batch_size or cfg.train.batch_size, num_workers=cfg.data.num_workers)
    with accelerator_session(cfg, training=False) as accelerator:
        ensemble.to(accelerator.device).set_compute_dtype(compute_dtype(cfg))
        statistics = compute_ensemble_statistics(ensemble, ((batch["videos"], batch["prompts"]) for batch in loader))

    def fill(staging: Path) -> None:
        ensemble.save_pretrained(staging)
        save_config(cfg, staging)
        atomic_write_text(staging / STATISTICS_NAME, json.dumps({**statistics, "split": stats_split}, indent=2))

    output = write_dir_atomically(Path(output).expanduser(), fill)
    metrics = evaluate_checkpoint(output, split=split)
    return {"statistics": statistics, "metrics": metrics}


def main(argv: Sequence[str] | None = None) -> int:
    arguments, overrides = split_cli(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m training_recipes.ensemble", description=__doc__.strip().splitlines()[0])
    parser.add_argument("members", nargs="+", help="PCQA run folders or save_pretrained folders")
    parser.add_argument("--output", required=True, help="folder to write the ensemble to (native format)")
    parser.add_argument("--config", help="recipe naming the data (default: the first member's saved config)")
    parser.add_argument("--flip-tta", action="store_true", help="average each member over the video and its mirror")
    parser.add_argument("--stats-split", default="train", choices=PARTS)
    parser.add_argument("--split", default="test", choices=PARTS, help="split to report metrics on")
    args = parser.parse_args(arguments)
    result = build_ensemble(
        args.members, args.output, config=args.config, overrides=overrides, flip_tta=args.flip_tta,
        stats_split=args.stats_split, split=args.split,
    )
    print(f"ensemble of {len(args.members)} written to {args.output}; on {args.split}:\n{format_metrics(result['metrics'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
