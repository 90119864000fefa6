"""The value every reward returns: a score per video plus its named components."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class RewardOutput:
    """Per-video reward ``score`` [B] and named ``components`` (each [B]).

    ``extras`` carries optional diagnostics such as score maps; it is empty unless asked for.
    """

    score: torch.Tensor
    components: dict[str, torch.Tensor] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def detach(self) -> "RewardOutput":
        """A copy cut from the autograd graph (for logging and tables)."""
        return RewardOutput(
            score=self.score.detach(),
            components={k: v.detach() for k, v in self.components.items()},
            extras=dict(self.extras),
        )

    def to_rows(self) -> list[dict[str, float]]:
        """One plain dict per video: ``{"score": ..., <component>: ...}``."""
        rows = []
        for i in range(self.score.shape[0]):
            row = {"score": float(self.score[i])}
            row.update({k: float(v[i]) for k, v in self.components.items()})
            rows.append(row)
        return rows
