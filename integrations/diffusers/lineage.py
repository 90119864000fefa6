"""How a searched video was made: its initial noise and every event that changed its trajectory.

A lineage is enough to regenerate the video alone (``integrations.diffusers.sampler.regenerate``):

- ``seed``: the initial noise is ``adapter.prepare_latents(1, generator=Generator().manual_seed(seed))``;
- ``moves`` (noise search): then, in order, ``x <- sqrt(1 - r^2) x + r z`` with ``z`` drawn the same
  way from ``move.seed`` (a neighbour of the ``parent`` candidate's noise at radius ``r``);
- ``resampled`` (resampling): at step ``k`` the particle took over ``parent``'s trajectory; with a
  ``seed`` it was a duplicate and continued with that share of fresh noise (``strength``);
- ``stopped_at`` (early pruning): the candidate stopped after this many steps and has no video.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class NoiseMove:
    """A step of the noise search: the neighbour of candidate ``parent`` at ``radius``, drawn from ``seed``."""

    parent: int
    seed: int
    radius: float


@dataclass(frozen=True)
class Resampled:
    """At ``step`` the particle continued ``parent``'s trajectory; ``seed`` set: as a duplicate with fresh noise."""

    step: int
    parent: int
    seed: int | None = None
    strength: float = 0.0


@dataclass(frozen=True)
class Lineage:
    """Everything that decided one video (see the module docstring)."""

    seed: int
    moves: tuple[NoiseMove, ...] = ()
    resampled: tuple[Resampled, ...] = ()
    stopped_at: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (as stored in ``results.json`` and ``state.json``)."""
        return {
            "seed": self.seed, "moves": [asdict(m) for m in self.moves],
            "resampled": [asdict(r) for r in self.resampled], "stopped_at": self.stopped_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Lineage":
        return cls(
            seed=int(data["seed"]), moves=tuple(NoiseMove(**m) for m in data.get("moves", ())),
            resampled=tuple(Resampled(**r) for r in data.get("resampled", ())), stopped_at=data.get("stopped_at"),
        )

    def moved(self, move: NoiseMove) -> "Lineage":
        """This noise moved once more (a noise-search neighbour)."""
        return Lineage(self.seed, (*self.moves, move))

    def then_resampled(self, event: Resampled) -> "Lineage":
        """This trajectory continued by a particle after a resampling step."""
        return Lineage(self.seed, self.moves, (*self.resampled, event))

    def stopped(self, step: int) -> "Lineage":
        return Lineage(self.seed, self.moves, self.resampled, stopped_at=step)
