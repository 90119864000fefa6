"""Training losses for quality scorers: PLCC and rank losses (DOVER / T2VQA / AIGC-VQA) and normalised-MOS MSE.

Every loss takes predictions and labels of shape ``[B]`` and returns a 0-d fp32 tensor. They run
in fp32 whatever autocast is active, as heads and losses do everywhere in this package.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

#: Rank-loss weight of the public AIGC-VQA / DOVER training code: ``plcc + 0.3 * rank``.
DEFAULT_RANK_WEIGHT = 0.3
#: Added to the standard deviation before z-scoring, as in the public code.
EPS = 1e-8
RANK_FORMS = ("public", "margin")


def _pair(pred: torch.Tensor, target: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    pred = torch.as_tensor(pred)
    target = torch.as_tensor(target, device=pred.device)
    if pred.ndim != 1 or pred.shape != target.shape:
        raise ValueError(
            f"{name} takes predictions and labels of the same shape [B], got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}; flatten them with .reshape(-1)."
        )
    return pred.float(), target.float()


def _zscore(x: torch.Tensor) -> torch.Tensor:
    std, mean = torch.std_mean(x, unbiased=False)
    return (x - mean) / (std + EPS)


def plcc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PLCC loss of the public DOVER/T2VQA code: z-score both, ``(mse(p, y) + mse(rho * p, y)) / 8``.

    0 when predictions are a positive linear function of the labels; a batch of one gives 0.
    """
    pred, target = _pair(pred, target, "plcc_loss")
    with torch.autocast(device_type=pred.device.type, enabled=False):
        p, y = _zscore(pred), _zscore(target)
        loss0 = F.mse_loss(p, y) / 4
        rho = torch.mean(p * y)
        loss1 = F.mse_loss(rho * p, y) / 4
        return (loss0 + loss1) / 2


def rank_loss(pred: torch.Tensor, target: torch.Tensor, form: str = "public") -> torch.Tensor:
    """Pairwise rank loss. ``form="public"``: the training code's hinge; ``"margin"``: the paper's Eq. 7.

    public: ``sum_ij relu((p_i - p_j) * sign(y_j - y_i)) / (B (B - 1)) / (1 + max_ij relu(...))``.
    margin: ``mean_{i != j} max(0, |y_i - y_j| - sign(y_i - y_j) (p_i - p_j))``.
    Tied labels contribute 0 in both forms. A batch of one has no pairs and gives 0.
    """
    if form not in RANK_FORMS:
        raise ValueError(f"unknown rank loss form {form!r}; choose one of {RANK_FORMS}")
    pred, target = _pair(pred, target, "rank_loss")
    batch = pred.shape[0]
    if batch < 2:
        return pred.sum() * 0.0
    with torch.autocast(device_type=pred.device.type, enabled=False):
        pred_diff = pred[:, None] - pred[None, :]
        target_diff = target[:, None] - target[None, :]
        if form == "public":
            hinge = F.relu(pred_diff * torch.sign(-target_diff))
            return hinge.sum() / (batch * (batch - 1)) / (1 + hinge.max())
        hinge = F.relu(target_diff.abs() - torch.sign(target_diff) * pred_diff)
        return hinge.sum() / (batch * (batch - 1))


def plcc_rank_loss(
    pred: torch.Tensor, target: torch.Tensor, rank_weight: float = DEFAULT_RANK_WEIGHT, rank_form: str = "public"
) -> dict[str, torch.Tensor]:
    """``plcc + rank_weight * rank``, returned with its terms: ``{"loss", "plcc", "rank"}``."""
    plcc = plcc_loss(pred, target)
    rank = rank_loss(pred, target, form=rank_form)
    return {"loss": plcc + rank_weight * rank, "plcc": plcc, "rank": rank}


def branch_plcc_rank_loss(
    predictions: Mapping[str, torch.Tensor],
    target: torch.Tensor,
    branches: Sequence[str],
    rank_weight: float = DEFAULT_RANK_WEIGHT,
    rank_form: str = "public",
) -> dict[str, torch.Tensor]:
    """AIGC-VQA's per-branch supervision: ``sum_b plcc(q_b, y) + rank_weight * sum_b rank(q_b, y)``.

    Each named branch is regressed on the same MOS. Returns the total and every term
    (``"plcc/<branch>"``, ``"rank/<branch>"``).
    """
    if not branches:
        raise ValueError("branch_plcc_rank_loss needs at least one branch name")
    missing = [name for name in branches if name not in predictions]
    if missing:
        raise KeyError(f"branches {missing} are not among the model outputs {sorted(predictions)}")
    terms: dict[str, torch.Tensor] = {}
    total = None
    for name in branches:
        parts = plcc_rank_loss(predictions[name], target, rank_weight, rank_form)
        terms[f"plcc/{name}"], terms[f"rank/{name}"] = parts["plcc"], parts["rank"]
        total = parts["loss"] if total is None else total + parts["loss"]
    return {"loss": total, **terms}


def normalized_mse_loss(pred: torch.Tensor, target_normalized: torch.Tensor) -> torch.Tensor:
    """PCQA's loss: MSE between predictions and MOS z-scored with the training set's mean and std."""
    pred, target = _pair(pred, target_normalized, "normalized_mse_loss")
    with torch.autocast(device_type=pred.device.type, enabled=False):
        return F.mse_loss(pred, target)
