"""The ``loss:`` section -> a function ``(RewardOutput, batch) -> {"loss": total, <term>: value, ...}``."""
from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig

from reward import losses
from reward.output import RewardOutput

from .modeling import import_target

Objective = Callable[[RewardOutput, dict], dict[str, torch.Tensor]]


def outputs_of(output: RewardOutput) -> dict[str, torch.Tensor]:
    """The supervisable outputs of a reward: ``score`` plus every component."""
    return {"score": output.score, **output.components}


def make_objective(loss: DictConfig, *, normalized_targets: bool) -> Objective:
    """Build the training objective; ``normalized_targets`` says whether batch targets are z-scored MOS."""
    if loss.target:
        return import_target(loss.target)
    names = list(loss.outputs)
    if loss.name == "plcc_rank":

        def plcc_rank(output: RewardOutput, batch: dict) -> dict[str, torch.Tensor]:
            return losses.branch_plcc_rank_loss(outputs_of(output), batch["target"], names, loss.rank_weight, loss.rank_form)

        return plcc_rank
    if loss.name == "normalized_mse":
        if not normalized_targets:
            raise ValueError("loss.name=normalized_mse regresses z-scored MOS: also set data.normalize_mos=true")

        def normalized_mse(output: RewardOutput, batch: dict) -> dict[str, torch.Tensor]:
            predictions = outputs_of(output)
            missing = [name for name in names if name not in predictions]
            if missing:
                raise KeyError(f"loss.outputs {missing} are not among the model outputs {sorted(predictions)}")
            terms = {f"mse/{name}": losses.normalized_mse_loss(predictions[name], batch["target"]) for name in names}
            return {"loss": sum(terms.values()), **terms}

        return normalized_mse
    raise ValueError(f"unknown loss.name {loss.name!r}; use plcc_rank or normalized_mse (or loss.target)")
