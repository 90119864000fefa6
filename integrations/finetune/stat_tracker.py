"""Per-prompt advantage normalisation for policy-gradient fine-tuning (DDPO).

Same semantics as trl 0.23.1's ``PerPromptStatTracker(buffer_size, min_count)``: every prompt keeps
its last ``buffer_size`` rewards; a reward is normalised by its prompt's buffer once that holds at
least ``min_count`` values, otherwise by the statistics of the whole current batch.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

#: Added to the standard deviation so constant rewards give zero advantages, not NaN.
STD_EPS = 1e-6


class PerPromptStatTracker:
    """Turn rewards into advantages normalised per prompt, with a rolling buffer per prompt."""

    def __init__(self, buffer_size: int, min_count: int):
        if buffer_size < 1 or min_count < 1:
            raise ValueError(f"buffer_size and min_count must be >= 1, got {buffer_size} and {min_count}")
        self.buffer_size = buffer_size
        self.min_count = min_count
        self.buffers: dict[str, deque[float]] = {}

    def update(self, prompts: Sequence[str], rewards: torch.Tensor | Sequence[float]) -> torch.Tensor:
        """Add this batch to the buffers and return one advantage per reward (float32 tensor)."""
        values = np.asarray(torch.as_tensor(rewards, dtype=torch.float64).detach().cpu(), dtype=np.float64)
        prompts = list(prompts)
        if values.ndim != 1 or len(prompts) != values.shape[0]:
            raise ValueError(
                f"need one reward per prompt, got {len(prompts)} prompts and rewards of shape {values.shape}"
            )
        keys = np.asarray(prompts, dtype=object)
        advantages = np.empty_like(values)
        for prompt in dict.fromkeys(prompts):
            mask = keys == prompt
            buffer = self.buffers.setdefault(prompt, deque(maxlen=self.buffer_size))
            buffer.extend(values[mask].tolist())
            reference = np.asarray(buffer) if len(buffer) >= self.min_count else values
            advantages[mask] = (values[mask] - reference.mean()) / (reference.std() + STD_EPS)
        return torch.from_numpy(advantages).float()

    def stats(self) -> dict[str, dict[str, float]]:
        """Mean, std and count of every prompt's buffer (for logging)."""
        return {
            prompt: {"mean": float(np.mean(buf)), "std": float(np.std(buf)), "count": len(buf)}
            for prompt, buf in self.buffers.items()
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: the settings and every buffer."""
        return {
            "buffer_size": self.buffer_size,
            "min_count": self.min_count,
            "buffers": {prompt: list(buf) for prompt, buf in self.buffers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer_size = int(state["buffer_size"])
        self.min_count = int(state["min_count"])
        self.buffers = {p: deque(v, maxlen=self.buffer_size) for p, v in state["buffers"].items()}
