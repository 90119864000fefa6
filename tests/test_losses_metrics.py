"""Losses and metrics against values computed by hand (including ties and constant predictions)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reward import losses, metrics


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


# -- PLCC loss --------------------------------------------------------------------------------
def test_plcc_loss_hand_values():
    assert float(losses.plcc_loss(t(1, 2, 3), t(10, 20, 30))) == pytest.approx(0.0, abs=1e-6)
    # reversed: z(p) = -z(y); loss0 = mean((2z)^2)/4 = 1, rho = -1, loss1 = 0 -> 0.5
    assert float(losses.plcc_loss(t(3, 2, 1), t(1, 2, 3))) == pytest.approx(0.5, abs=1e-6)
    # uncorrelated: z(p)=[-1,-1,1,1], z(y)=[-1,1,-1,1]; loss0 = 2/4, rho = 0, loss1 = 1/4 -> 0.375
    assert float(losses.plcc_loss(t(0, 0, 1, 1), t(0, 1, 0, 1))) == pytest.approx(0.375, abs=1e-6)


def test_plcc_loss_is_scale_and_shift_invariant_and_fp32_under_autocast():
    pred, target = torch.randn(8), torch.randn(8)
    expected = losses.plcc_loss(pred, target)
    assert float(losses.plcc_loss(3 * pred + 7, target)) == pytest.approx(float(expected), abs=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = losses.plcc_loss(pred.bfloat16(), target)
    assert value.dtype == torch.float32


# -- rank loss --------------------------------------------------------------------------------
def test_public_rank_loss_hand_values():
    # fully reversed: hinge matrix sums to 8 over 6 pairs, max 2 -> 8 / 6 / 3
    assert float(losses.rank_loss(t(1, 2, 3), t(3, 2, 1))) == pytest.approx(8 / 6 / 3, abs=1e-6)
    # tied labels 0 and 1 contribute nothing; pairs (1,2) and (2,1) give 4 each, max 4 -> 8 / 6 / 5
    assert float(losses.rank_loss(t(0, 5, 1), t(1, 1, 2))) == pytest.approx(8 / 30, abs=1e-6)
    assert float(losses.rank_loss(t(1, 2, 3), t(1, 2, 3))) == 0.0


def test_margin_rank_loss_hand_values():
    # pairs (1,2) and (2,1): 1 + 4 each; ties and correctly ordered pairs with enough margin give 0
    assert float(losses.rank_loss(t(0, 5, 1), t(1, 1, 2), form="margin")) == pytest.approx(10 / 6, abs=1e-6)
    assert float(losses.rank_loss(t(0, 3), t(1, 2), form="margin")) == 0.0
    # correctly ordered but within the label margin: 1 - 0.5 in both directions, mean over 2 pairs
    assert float(losses.rank_loss(t(0, 0.5), t(1, 2), form="margin")) == pytest.approx(0.5, abs=1e-6)


def test_rank_loss_single_item_and_bad_inputs():
    pred = torch.tensor([0.3], requires_grad=True)
    value = losses.rank_loss(pred, t(1))
    value.backward()
    assert float(value.detach()) == 0.0 and float(pred.grad) == 0.0
    with pytest.raises(ValueError, match="unknown rank loss form"):
        losses.rank_loss(t(1, 2), t(1, 2), form="hinge")
    with pytest.raises(ValueError, match="same shape"):
        losses.rank_loss(t(1, 2), t(1, 2, 3))


def test_combined_and_branch_losses():
    pred, target = t(3, 1, 2), t(1, 2, 3)
    parts = losses.plcc_rank_loss(pred, target)
    assert float(parts["loss"]) == pytest.approx(float(parts["plcc"] + 0.3 * parts["rank"]), abs=1e-7)
    branches = {"technical": pred, "aesthetic": t(1, 2, 3), "alignment": t(9, 9, 9)}
    total = losses.branch_plcc_rank_loss(branches, target, ["technical", "aesthetic"], rank_weight=0.5)
    expected = sum(float(losses.plcc_rank_loss(branches[k], target, 0.5)["loss"]) for k in ("technical", "aesthetic"))
    assert float(total["loss"]) == pytest.approx(expected, abs=1e-6)
    assert set(total) == {"loss", "plcc/technical", "rank/technical", "plcc/aesthetic", "rank/aesthetic"}
    with pytest.raises(KeyError, match="colour"):
        losses.branch_plcc_rank_loss(branches, target, ["colour"])


def test_losses_give_finite_nonzero_gradients():
    pred = torch.randn(6, requires_grad=True)
    target = torch.randn(6)
    total = losses.plcc_rank_loss(pred, target)["loss"] + losses.rank_loss(pred, target, form="margin")
    total.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_normalized_mse():
    assert float(losses.normalized_mse_loss(t(0, 1), t(1, 1))) == pytest.approx(0.5)


# -- metrics ----------------------------------------------------------------------------------
def test_srocc_with_ties_uses_average_ranks():
    # ranks [1, 2.5, 2.5, 4] vs [1, 2, 3, 4]: 4.5 / sqrt(4.5 * 5)
    assert metrics.srocc([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5), abs=1e-12)


def test_krcc_is_tau_b_with_ties():
    # 5 concordant, 0 discordant, one tie in predictions: 5 / sqrt((6 - 1) * 6)
    assert metrics.krcc([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30), abs=1e-12)


def test_plcc_and_rmse_hand_values():
    assert metrics.plcc([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8, abs=1e-12)
    assert metrics.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3), abs=1e-12)
    assert metrics.srocc(torch.tensor([3.0, 2.0, 1.0]), np.array([1, 2, 3])) == pytest.approx(-1.0)


def test_constant_predictions_give_nan_correlations_and_a_finite_rmse():
    mos = [1.0, 2.0, 4.0]
    result = metrics.quality_metrics([2.0, 2.0, 2.0], mos)
    assert math.isnan(result["srocc"]) and math.isnan(result["plcc"]) and math.isnan(result["krcc"])
    assert result["rmse"] == pytest.approx(math.sqrt((1 + 0 + 4) / 3))
    # the best mapping of a constant is the label mean: RMSE becomes the label standard deviation
    assert metrics.rmse([2.0, 2.0, 2.0], mos, logistic=True) == pytest.approx(float(np.std(mos)))
    assert not metrics.is_better(math.nan, 0.1) and metrics.is_better(0.1, math.nan) and metrics.is_better(-0.5, None)
    assert metrics.is_better(0.2, 0.5, higher_is_better=False)


def test_logistic_mapping_recovers_a_logistic_relation():
    x = np.linspace(-3, 3, 40)
    mos = metrics.logistic_4p(x, 5.0, 1.0, 0.5, 0.7)
    assert metrics.plcc(x, mos) < 0.98
    assert metrics.plcc(x, mos, logistic=True) == pytest.approx(1.0, abs=1e-6)
    assert metrics.rmse(x, mos, logistic=True) == pytest.approx(0.0, abs=1e-4)
    assert metrics.quality_metrics(x, mos, logistic=True)["srocc"] == pytest.approx(1.0)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="differ in length"):
        metrics.srocc([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 2"):
        metrics.plcc([1], [1])
    with pytest.raises(ValueError, match="index 1"):
        metrics.rmse([1, float("nan")], [1, 2])
