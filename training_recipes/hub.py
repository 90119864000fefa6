"""Sharing a trained scorer: its run's recipe, data and metrics in the model card, and the upload itself.

``push_run("runs/pcqa", "owner/name")`` (or the recipe option ``push_to_hub: owner/name``) uploads the run's
``best/`` (``final/`` when nothing was evaluated) with a card built from the files the run wrote beside the
weights: ``training_config.yaml`` (the recipe), ``metrics.json`` / ``test_metrics.json`` and ``mos_stats.json``.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from reward import metrics
from reward.base import CONFIG_NAME, VideoReward

from .config import RUN_CONFIG_NAME
from .data.normalization import MOS_STATS_NAME, MosStats
from .train import BEST, FINAL, METRICS_NAME, TEST_METRICS_NAME

#: The run's files uploaded beside config.json and model.safetensors.
RUN_FILES = (RUN_CONFIG_NAME, METRICS_NAME, TEST_METRICS_NAME, MOS_STATS_NAME)


@dataclass
class RunRecord:
    """What a run adds to a model card: markdown sections and the preset it trained."""

    sections: list[str]
    preset: str | None


def export_folder(run: str | Path) -> Path:
    """The native folder to share: a run's ``best/`` (else ``final/``), or ``run`` itself when it is one."""
    run = Path(run)
    for folder in (run / BEST, run / FINAL, run):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise FileNotFoundError(f"{run} is neither a training run (with {BEST}/ or {FINAL}/) nor a save_pretrained folder")


def add_run(run: str | Path, folder: Path) -> RunRecord:
    """Copy the run's recipe, metrics and MOS statistics into ``folder`` (the upload) and describe them."""
    source = export_folder(run)
    for name in RUN_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, folder / name)
    recipe_file = source / RUN_CONFIG_NAME
    if not recipe_file.is_file():
        return RunRecord([], None)
    recipe = OmegaConf.to_container(OmegaConf.load(recipe_file), resolve=True)
    sections = [_training_section(recipe, MosStats.load(source)), *_metrics_sections(source, recipe),
                "## Recipe\n\n`training_config.yaml`, the resolved recipe of the run:\n\n```yaml\n"
                + recipe_file.read_text().rstrip() + "\n```\n"]
    return RunRecord(sections, recipe["model"].get("name"))


def push_run(run: str | Path, repo_id: str, **options: Any) -> str:
    """Upload a run's ``best/`` (else ``final/``) with a model card describing the run; returns the commit URL.
    ``options`` go to ``VideoReward.push_to_hub`` (``license``, ``private``, ``token``, ``commit_message``)."""
    folder = export_folder(run)
    return VideoReward.from_pretrained(folder).push_to_hub(repo_id, run=folder, **options)


def _training_section(recipe: dict[str, Any], mos_stats: MosStats | None) -> str:
    model, data, train, loss, optim = (recipe[key] for key in ("model", "data", "train", "loss", "optim"))
    if data["format"] == "synthetic":
        where = f"{data['synthetic']['count']} synthetic clips (`training_recipes.synthetic`, seed {data['synthetic']['seed']})"
    else:
        where = f"`{data['path']}`" + (f" (videos under `{data['root']}`)" if data.get("root") else "")
    split = data["split"]
    parts = (f"split {split['index']} of {split['num_splits']} random {split['train_fraction']:.0%} / "
             f"{1 - split['train_fraction']:.0%} train/test splits (seed {split['seed']})") if split["protocol"] == "random" \
        else f"split protocol `{split['protocol']}`"
    if split.get("val_fraction"):
        parts += f"; {split['val_fraction']:.0%} of train held out to select the best epoch"
    start = model.get("weights") or ("pretrained weights" if model.get("pretrained") else "random weights")
    lines = [
        "## Training",
        "",
        f"Trained with the `{recipe['name']}` recipe of `training_recipes` "
        f"(`python -m training_recipes.train {recipe['name']}`), from `{model.get('name') or model.get('target')}` "
        f"({start}).",
        "",
        f"- **Data**: `{data['format']}` data, {where}; {data['num_frames'] or 'all'} frames per item; {parts}.",
        f"- **Loss**: `{loss['name']}` on {', '.join(f'`{o}`' for o in loss['outputs'])}; AdamW, learning rate "
        f"{optim['lr']}, {train['epochs']} epochs of batch {train['batch_size']}, mixed precision `{train['mixed_precision']}`.",
    ]
    if mos_stats is not None:
        lines.append(f"- **MOS scale**: trained on MOS z-scored with the training mean {mos_stats.mean:.4g} and standard "
                     f"deviation {mos_stats.std:.4g} (`{MOS_STATS_NAME}`): `score * std + mean` is a predicted MOS.")
    return "\n".join(lines) + "\n"


def _metrics_sections(source: Path, recipe: dict[str, Any]) -> list[str]:
    """The exported checkpoint's metrics, saying which part chose it and which part scored it."""
    metric = f"`{recipe['eval']['metric']}`"
    sections = []
    if (source / TEST_METRICS_NAME).is_file():
        row = json.loads((source / TEST_METRICS_NAME).read_text())
        sections.append(f"## Test metrics\n\nThe checkpoint of step {row.get('step')}, selected on the validation part by "
                        f"{metric}, scored once on the test part (`{TEST_METRICS_NAME}`):\n\n{_metrics_table(row)}")
    if (source / METRICS_NAME).is_file():
        row = json.loads((source / METRICS_NAME).read_text())
        part = row.get("split")
        if part == "test":
            sections.append(f"## Test metrics\n\nThe best epoch by {metric} on the test part itself (step {row.get('step')}; "
                            f"no validation part, as in the public protocol), from `{METRICS_NAME}`:\n\n{_metrics_table(row)}")
        else:
            sections.append(f"## Metrics on the {part} part\n\nThe best epoch by {metric} (step {row.get('step')}), "
                            f"from `{METRICS_NAME}`:\n\n{_metrics_table(row)}")
    return sections


def _metrics_table(row: dict[str, Any]) -> str:
    """A markdown table: one row per metric, one column for the score and each component."""
    columns = ["score"] + sorted({key.split("/")[0] for key in row if "/" in key})
    lines = ["| metric | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name in metrics.METRIC_NAMES:
        cells = [row.get(name if column == "score" else f"{column}/{name}") for column in columns]
        lines.append(f"| {name} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in cells) + " |")
    return "\n".join(lines) + "\n"
