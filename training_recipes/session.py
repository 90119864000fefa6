"""One accelerate session per ``train`` / ``evaluate`` call.

accelerate keeps mixed precision and device choice process-wide; releasing them when a call ends
lets the next call in the same process (the next AIGC-VQA stage, a notebook cell, a test) choose
other ones. The distributed process group itself is kept.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from accelerate import Accelerator
from accelerate.state import AcceleratorState
from omegaconf import DictConfig


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
    kwargs = {"mixed_precision": config.train.mixed_precision, "cpu": config.train.cpu}
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
