"""Score any checkpoint on any split: ``python -m training_recipes.evaluate CHECKPOINT [--split test] [key=value ...]``.

CHECKPOINT is a run folder (its ``best/`` is used), a native export (``best/``, ``final/``, any
``save_pretrained`` folder) or a training checkpoint (``checkpoints/step_*``). The data and
split come from the config saved with it, or ``--config RECIPE``; ``key=value`` overrides
change them (e.g. another dataset: ``data.format=t2vqa data.path=/data/T2VQA-DB``).
Prints SROCC, PLCC, KRCC and RMSE of the score and of each component.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig
from torch.utils.data import DataLoader

from reward.base import CONFIG_NAME, VideoReward
from reward.checkpoints import load_safetensors, load_state_dict_strict, strip_prefix

from .checkpointing import STATE_NAME
from .config import RUN_CONFIG_NAME, load_config, split_cli
from .data.from_config import PARTS, build_data
from .data.normalization import MosStats
from .evaluation import finite_or_none, format_metrics, predict, score_metrics
from .modeling import build_model, import_target
from .session import accelerator_session, compute_dtype

ACCELERATE_WEIGHTS = "model.safetensors"


def locate_checkpoint(checkpoint: Path) -> tuple[Path, Path | None]:
    """(folder holding the weights, folder holding the run config) for the three checkpoint kinds."""
    if (checkpoint / "best" / CONFIG_NAME).is_file():
        checkpoint = checkpoint / "best"
    if (checkpoint / CONFIG_NAME).is_file():
        return checkpoint, checkpoint if (checkpoint / RUN_CONFIG_NAME).is_file() else None
    if (checkpoint / STATE_NAME).is_file():
        run = checkpoint.parent.parent
        return checkpoint, run if (run / RUN_CONFIG_NAME).is_file() else None
    raise FileNotFoundError(
        f"{checkpoint} is not a run folder, a save_pretrained folder ({CONFIG_NAME}) or a training checkpoint ({STATE_NAME})"
    )


def load_for_evaluation(checkpoint: Path, config: DictConfig) -> VideoReward:
    """The model stored in ``checkpoint`` (native export or training checkpoint)."""
    if config.model.target:
        import_target(config.model.target)  # registers the architecture of custom models
    if (checkpoint / CONFIG_NAME).is_file():
        return VideoReward.from_pretrained(checkpoint)
    model = build_model(config.model)
    state = strip_prefix(load_safetensors(checkpoint / ACCELERATE_WEIGHTS), "module.")
    load_state_dict_strict(model, state, source=str(checkpoint / ACCELERATE_WEIGHTS))
    return model


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    split: str = "test",
    logistic: bool | None = None,
    batch_size: int | None = None,
) -> dict[str, float]:
    """Metrics of ``checkpoint`` on ``split`` (train / val / test / all) of the configured data."""
    weights, run = locate_checkpoint(Path(checkpoint).expanduser())
    if config is None:
        if run is None:
            raise FileNotFoundError(f"no {RUN_CONFIG_NAME} next to {weights}; pass --config RECIPE to say which data to use")
        config = run / RUN_CONFIG_NAME
    cfg = load_config(config, overrides)
    stored_stats = MosStats.load(weights)
    data = build_data(cfg.data, seed=cfg.seed, mos_stats=stored_stats)
    model = load_for_evaluation(weights, cfg)
    model.set_compute_dtype(compute_dtype(cfg))
    loader = DataLoader(data.dataset(split), batch_size=batch_size or cfg.train.eval_batch_size or cfg.train.batch_size, num_workers=cfg.data.num_workers)
    with accelerator_session(cfg, training=False) as accelerator:
        model, loader = accelerator.prepare(model, loader)
        predictions, mos = predict(model, loader, accelerator, progress=cfg.train.progress)
    return score_metrics(predictions, mos, mos_stats=data.mos_stats, logistic=cfg.eval.logistic if logistic is None else logistic)


def main(argv: Sequence[str] | None = None) -> int:
    arguments, overrides = split_cli(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m training_recipes.evaluate", description=__doc__.strip().splitlines()[0])
    parser.add_argument("checkpoint", help="run folder, save_pretrained folder or checkpoints/step_* folder")
    parser.add_argument("--config", help="recipe YAML or bundled name (default: the config saved with the checkpoint)")
    parser.add_argument("--split", default="test", choices=PARTS)
    parser.add_argument("--logistic", action="store_true", default=None, help="4-parameter logistic mapping before PLCC/RMSE")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(arguments)
    result = evaluate_checkpoint(
        args.checkpoint, config=args.config, overrides=overrides, split=args.split, logistic=args.logistic, batch_size=args.batch_size
    )
    print(json.dumps({k: finite_or_none(v) for k, v in result.items()}, indent=2) if args.json else f"{args.checkpoint} on {args.split}:\n{format_metrics(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
