"""Scoring a split and turning predictions into SROCC / PLCC / KRCC / RMSE (overall and per component)."""
from __future__ import annotations

import math

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from reward import metrics

from .data.normalization import MosStats


@torch.no_grad()
def predict(model: torch.nn.Module, loader: DataLoader, accelerator: Accelerator, *, progress: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run ``model`` in eval mode over ``loader``; returns (outputs by name, MOS), gathered over processes."""
    was_training = model.training
    model.eval()
    collected: dict[str, list[torch.Tensor]] = {}
    mos: list[torch.Tensor] = []
    try:
        for batch in tqdm(loader, desc="evaluating", leave=False, disable=not (progress and accelerator.is_local_main_process)):
            with accelerator.autocast():
                output = model(batch["videos"], batch["prompts"])
            values = {"score": output.score, **output.components}
            gathered = accelerator.gather_for_metrics({k: v.detach().float() for k, v in values.items()} | {"_mos": batch["mos"]})
            for name, value in gathered.items():
                (mos if name == "_mos" else collected.setdefault(name, [])).append(value.cpu())
    finally:
        model.train(was_training)
    return {k: torch.cat(v).numpy() for k, v in collected.items()}, torch.cat(mos).numpy()


def score_metrics(
    predictions: dict[str, np.ndarray], mos: np.ndarray, *, mos_stats: MosStats | None = None, logistic: bool = False
) -> dict[str, float]:
    """Metrics of the overall score (``srocc``, ...) and of each component (``<component>/srocc``, ...).

    With ``mos_stats`` the overall score is first mapped back to the MOS scale, so RMSE is in MOS units.
    """
    score = predictions["score"]
    if mos_stats is not None:
        score = mos_stats.denormalize(score)
    result = metrics.quality_metrics(score, mos, logistic=logistic)
    for name, values in predictions.items():
        if name != "score":
            component = metrics.quality_metrics(values, mos, logistic=logistic)
            result.update({f"{name}/{key}": value for key, value in component.items() if key != "rmse"})
    return result


def finite_or_none(value):
    """NaN (an undefined correlation) as None, for JSON and CSV output."""
    return None if isinstance(value, float) and math.isnan(value) else value


def format_metrics(result: dict[str, float]) -> str:
    """A table: one row per metric, one column for the score and each component."""
    columns = ["score"] + sorted({key.split("/")[0] for key in result if "/" in key})
    lines = ["metric " + "".join(f"{c:>12}" for c in columns)]
    for name in metrics.METRIC_NAMES:
        cells = [result.get(name if c == "score" else f"{c}/{name}") for c in columns]
        lines.append(f"{name:<7}" + "".join(f"{v:>12.4f}" if v is not None else f"{'-':>12}" for v in cells))
    return "\n".join(lines)
