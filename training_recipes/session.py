"""One accelerate session per ``train`` / ``evaluate`` call.

accelerate keeps mixed precision and device choice process-wide; releasing them when a call ends
lets the next call in the same process (the next AIGC-VQA stage, a notebook cell, a test) choose
other ones. The distributed process group itself is kept.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from omegaconf import DictConfig

from reward.precision import parse_dtype

MIXED_PRECISION_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def compute_dtype(config: DictConfig) -> torch.dtype | None:
    """The backbone autocast dtype: ``model.compute_dtype``, else the one of ``train.mixed_precision``."""
    return parse_dtype(config.model.compute_dtype) or MIXED_PRECISION_DTYPES.get(mixed_precision(config))


def mixed_precision(config: DictConfig) -> str:
    """``train.mixed_precision`` as accelerate names it; YAML reads a bare ``no`` as false, which means "no"."""
    value = config.train.mixed_precision
    return "no" if value is False or value is None else str(value)


def tensorboard_trackers(setting: str | bool) -> list[str]:
    """``["tensorboard"]`` when asked for (``True``) or when ``"auto"`` and TensorBoard is installed."""
    if setting not in ("auto", True):
        return []
    try:
        import tensorboard  # noqa: F401  (probing whether it is installed)
    except ImportError:
        if setting is True:
            raise ImportError("train.tensorboard=true needs TensorBoard: pip install tensorboard") from None
        return []
    return ["tensorboard"]


@contextlib.contextmanager
def accelerator_session(config: DictConfig, *, training: bool) -> Iterator[Accelerator]:
    """An ``Accelerator`` configured from ``config.train``; its process-wide state is released on exit."""
    kwargs = {"mixed_precision": mixed_precision(config), "cpu": config.train.cpu}
    if training:
        trackers = tensorboard_trackers(config.train.tensorboard)
        kwargs |= {
            "gradient_accumulation_steps": config.train.grad_accum,
            "log_with": trackers or None,
            "project_dir": str(config.output_dir),
        }
    accelerator = Accelerator(**kwargs)
    try:
        yield accelerator
    finally:
        if training and accelerator.log_with:
            accelerator.end_training()
        AcceleratorState._reset_state()
