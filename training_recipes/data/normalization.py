"""MOS z-normalisation with statistics fitted on the training split and stored beside the model."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from reward.checkpoints import atomic_write_text
from reward.errors import DatasetError

MOS_STATS_NAME = "mos_stats.json"


@dataclass(frozen=True)
class MosStats:
    """Mean and (population) standard deviation of the training MOS."""

    mean: float
    std: float

    @classmethod
    def fit(cls, values: Sequence[float]) -> "MosStats":
        data = torch.as_tensor(list(values), dtype=torch.float64)
        if data.numel() < 2:
            raise DatasetError(f"need at least 2 MOS values to fit normalisation statistics, got {data.numel()}")
        std = float(data.std(unbiased=False))
        if not std > 0:
            raise DatasetError("all training MOS values are equal; there is nothing to learn from this split")
        return cls(float(data.mean()), std)

    def normalize(self, mos: torch.Tensor | float) -> torch.Tensor | float:
        return (mos - self.mean) / self.std

    def denormalize(self, value: torch.Tensor | float) -> torch.Tensor | float:
        return value * self.std + self.mean

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / MOS_STATS_NAME
        atomic_write_text(path, json.dumps(asdict(self)))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "MosStats | None":
        """Statistics stored in ``folder``, or None when the model was trained without normalisation."""
        path = Path(folder) / MOS_STATS_NAME
        if not path.is_file():
            return None
        payload = json.loads(path.read_text())
        stats = cls(float(payload["mean"]), float(payload["std"]))
        if not (math.isfinite(stats.mean) and stats.std > 0):
            raise DatasetError(f"{path} holds invalid statistics {payload}")
        return stats
