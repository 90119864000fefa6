"""Quality-assessment metrics: SROCC, PLCC, KRCC, RMSE, with the optional 4-parameter logistic mapping.

Ties follow scipy (average ranks for SROCC, Kendall's tau-b for KRCC). A correlation is
undefined when either side is constant: the functions then return ``nan`` (no warning), and
callers that pick a best checkpoint treat ``nan`` as worse than any number.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import optimize, stats

METRIC_NAMES = ("srocc", "plcc", "krcc", "rmse")


def _as_pair(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    pred, target = _to_numpy(pred), _to_numpy(target)
    if pred.shape != target.shape:
        raise ValueError(f"predictions and labels differ in length: {pred.shape[0]} vs {target.shape[0]}")
    if pred.shape[0] < 2:
        raise ValueError(f"metrics need at least 2 (prediction, label) pairs, got {pred.shape[0]}")
    for name, values in (("predictions", pred), ("labels", target)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(f"{name} contain NaN or Inf (first at index {int(bad[0])}); drop or fix those items")
    return pred, target


def _to_numpy(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _constant(values: np.ndarray) -> bool:
    return bool(np.all(values == values[0]))


def _correlation(statistic, pred: np.ndarray, target: np.ndarray) -> float:
    """A scipy correlation, or ``nan`` when either side is constant (where it is undefined)."""
    if _constant(pred) or _constant(target):
        return math.nan
    return float(statistic(pred, target).statistic)


def srocc(pred: Any, target: Any) -> float:
    """Spearman rank-order correlation (average ranks for ties); ``nan`` if either side is constant."""
    return _correlation(stats.spearmanr, *_as_pair(pred, target))


def krcc(pred: Any, target: Any) -> float:
    """Kendall rank correlation, tau-b (tie-corrected); ``nan`` if either side is constant."""
    return _correlation(stats.kendalltau, *_as_pair(pred, target))


def plcc(pred: Any, target: Any, *, logistic: bool = False) -> float:
    """Pearson linear correlation, after the 4-parameter logistic mapping when ``logistic``."""
    pred, target = _as_pair(pred, target)
    return _correlation(stats.pearsonr, logistic_map(pred, target) if logistic else pred, target)


def rmse(pred: Any, target: Any, *, logistic: bool = False) -> float:
    """Root-mean-square error, after the 4-parameter logistic mapping when ``logistic``."""
    pred, target = _as_pair(pred, target)
    return _rmse(logistic_map(pred, target) if logistic else pred, target)


def _rmse(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - target) ** 2)))


def logistic_4p(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``: the VQEG monotonic mapping to the MOS scale."""
    z = np.clip(-(x - b3) / (abs(b4) + 1e-12), -500, 500)
    return (b1 - b2) / (1 + np.exp(z)) + b2


def logistic_map(pred: Any, target: Any) -> np.ndarray:
    """Fit the 4-parameter logistic from predictions to labels (least squares) and apply it.

    Constant predictions map to the label mean (the best any mapping can do). If the fit does
    not converge, a least-squares line is used instead, with a warning.
    """
    pred, target = _as_pair(pred, target)
    if _constant(pred):
        return np.full_like(target, target.mean())
    start = [target.max(), target.min(), pred.mean(), pred.std()]
    # "trf": its finite-difference steps stay usable when a start value is ~0 (lm's do not).
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(logistic_4p, pred, target, p0=start, method="trf", maxfev=20000)
        mapped = logistic_4p(pred, *params)
        if np.all(np.isfinite(mapped)):
            return mapped
    except RuntimeError:
        pass
    warnings.warn("the 4-parameter logistic fit did not converge; used a least-squares line instead", RuntimeWarning)
    slope, intercept = np.polyfit(pred, target, 1)
    return slope * pred + intercept


def quality_metrics(pred: Any, target: Any, *, logistic: bool = False) -> dict[str, float]:
    """All four metrics at once: ``{"srocc", "plcc", "krcc", "rmse"}`` (the logistic fit runs once)."""
    pred, target = _as_pair(pred, target)
    mapped = logistic_map(pred, target) if logistic else pred
    return {"srocc": srocc(pred, target), "plcc": _correlation(stats.pearsonr, mapped, target), "krcc": krcc(pred, target), "rmse": _rmse(mapped, target)}


def is_better(candidate: float, best: float | None, *, higher_is_better: bool = True) -> bool:
    """Whether ``candidate`` beats ``best`` (``None`` = nothing yet); ``nan`` never wins."""
    if math.isnan(candidate):
        return False
    if best is None or math.isnan(best):
        return True
    return candidate > best if higher_is_better else candidate < best
