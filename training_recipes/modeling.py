"""The ``model:`` and ``stage:`` sections: build the scorer, then choose which parameters train.

A stage names the components (branches) it trains; every other parameter is frozen. A branch is
a list of submodule names of the model (``stage.branches``). ``stage.unfrozen_fraction`` leaves
about that fraction of a branch trainable, using ``stage.freezer`` (``module, fraction ->`` nothing):
by default whole parameter tensors are frozen from the input side until the frozen share is
reached; ``imagereward_fix_rate`` follows ImageReward's layer-wise rule for BLIP. The resulting
counts are exact and reported per branch.
"""
from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torch import nn

import reward
from reward.base import VideoReward
from reward.checkpoints import atomic_write_text

TRAINABLE_REPORT_NAME = "trainable_parameters.json"


def import_target(spec: str) -> Callable:
    """``"package.module:attribute"`` -> the attribute (a builder, a loss, a freezer)."""
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ValueError(f"{spec!r} must look like 'package.module:attribute'")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ImportError(f"cannot import {spec!r}: {error}") from error


def build_model(model: DictConfig) -> VideoReward:
    """Build the scorer named by ``model.name`` (a reward preset) or ``model.target`` (a builder path).

    ``model.weights`` may be a mapping, e.g. ``{dover: DOVER.pth, imagereward: ImageReward.pt}`` for
    AIGC-VQA's zero-shot start.
    """
    overrides = OmegaConf.to_container(model.overrides, resolve=True)
    weights = OmegaConf.to_container(model.weights) if isinstance(model.weights, DictConfig) else model.weights
    if model.target:
        built = import_target(model.target)(weights=weights, pretrained=model.pretrained, **overrides)
    elif model.name:
        built = reward.load(model.name, weights, pretrained=model.pretrained, **overrides)
    else:
        raise ValueError("set model.name (a reward preset, see reward.list_rewards()) or model.target (module:builder)")
    if not isinstance(built, VideoReward):
        raise TypeError(f"the model builder returned {type(built).__name__}, not a reward.VideoReward")
    if model.gradient_checkpointing:
        built.set_gradient_checkpointing(True)
    if model.compile:
        options = OmegaConf.to_container(model.compile) if isinstance(model.compile, DictConfig) else {}
        built.compile(**options)
    return built


@dataclass
class BranchCount:
    name: str
    total: int
    trainable: int

    @property
    def fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0


def count(parameters) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    parameters = list(parameters)
    return sum(p.numel() for p in parameters), sum(p.numel() for p in parameters if p.requires_grad)


def freeze_leading_parameters(module: nn.Module, fraction: float) -> None:
    """Leave ``fraction`` of ``module``'s trainable parameters trainable, freezing whole tensors in registration order."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"unfrozen fraction must be in [0, 1], got {fraction}")
    candidates = [p for p in module.parameters() if p.requires_grad]
    budget = (1 - fraction) * sum(p.numel() for p in candidates)
    frozen = 0
    for parameter in candidates:
        if frozen + parameter.numel() > budget + 1e-9:
            break
        parameter.requires_grad_(False)
        frozen += parameter.numel()


def apply_stage(model: VideoReward, stage: DictConfig) -> list[BranchCount]:
    """Freeze everything outside ``stage.train``'s branches, apply unfrozen fractions, return the counts.

    Parameters the model itself keeps frozen (e.g. PCQA's text towers) stay frozen.
    """
    branches = {name: list(modules) for name, modules in stage.branches.items()}
    if stage.train is None:
        reports = [BranchCount(name, *count(_branch_parameters(model, modules))) for name, modules in branches.items()]
        return reports + [BranchCount("all", *count(model.parameters()))]
    unknown = [name for name in stage.train if name not in branches]
    if unknown:
        raise ValueError(f"stage.train names {unknown}, but stage.branches only defines {sorted(branches)}")
    trainable_by_design = {id(p) for p in model.parameters() if p.requires_grad}
    model.requires_grad_(False)
    for name in stage.train:
        for parameter in _branch_parameters(model, branches[name]):
            parameter.requires_grad_(id(parameter) in trainable_by_design)
    freezer = import_target(stage.freezer) if stage.get("freezer") else freeze_leading_parameters
    for name, fraction in stage.unfrozen_fraction.items():
        if name not in stage.train:
            raise ValueError(f"stage.unfrozen_fraction names {name!r}, which this stage does not train")
        freezer(nn.ModuleList(model.get_submodule(module) for module in branches[name]), float(fraction))
    reports = [BranchCount(name, *count(_branch_parameters(model, modules))) for name, modules in branches.items()]
    return reports + [BranchCount("all", *count(model.parameters()))]


def _branch_parameters(model: nn.Module, modules: list[str]):
    for name in modules:
        try:
            submodule = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"stage.branches names submodule {name!r}, which {type(model).__name__} does not have") from None
        yield from submodule.parameters()


def imagereward_fix_rate(module: nn.Module, fraction: float) -> None:
    """``stage.freezer`` for BLIP branches: ImageReward's layer-wise fix rate, with ``fix rate = 1 - fraction``."""
    from reward.aigcvqa.alignment import freeze_by_fix_rate

    freeze_by_fix_rate(module, 1.0 - fraction)


def save_trainable_report(reports: list[BranchCount], folder: str | Path) -> Path:
    path = Path(folder) / TRAINABLE_REPORT_NAME
    atomic_write_text(path, json.dumps([{**asdict(r), "fraction": r.fraction} for r in reports], indent=2))
    return path


def format_trainable_report(reports: list[BranchCount]) -> str:
    return "\n".join(f"  {r.name:<12} {r.trainable:>12,} / {r.total:>12,} trainable ({r.fraction:.4f})" for r in reports)
