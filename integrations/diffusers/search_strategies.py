"""The search strategies: how one prompt's budget of denoiser calls is spent (see ``search.search``).

Each strategy is a frozen dataclass of its settings (recorded with the run, so a resumed run must
use the same) with ``run(search)`` driving a ``PromptSearch``: the sampler, scoring and records
of one prompt. ``steps`` is the number of denoising steps of one video; a finished video costs
``steps`` denoiser calls, and a preview costs none (it is the clean-latent prediction of a step).
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from .lineage import Lineage, NoiseMove, Resampled
from .pruning import EarlyPruning, keep_threshold
from .resampling import resampling_weights, systematic_resample

if TYPE_CHECKING:
    from .prompt_search import PromptSearch, SearchCandidate


class SearchStrategy(abc.ABC):
    """How a prompt's denoiser calls are spent; ``name`` is the strategy's command-line name."""

    name: ClassVar[str]

    def check(self, steps: int, budget: int) -> None:
        """Refuse settings that cannot run with ``steps`` per video and ``budget`` calls per prompt."""
        if budget < steps:
            raise ValueError(f"a budget of {budget} denoiser calls cannot finish one {steps}-step video; give at least {steps}")

    @abc.abstractmethod
    def run(self, search: "PromptSearch") -> None:
        """Spend ``search.budget`` calls on ``search``'s prompt, recording every candidate there."""


@dataclass(frozen=True)
class BestOfN(SearchStrategy):
    """``budget // steps`` independent videos from candidate seeds (best_of_n's seed rule); keep the best."""

    name: ClassVar[str] = "best-of-n"

    def run(self, search: "PromptSearch") -> None:
        count = search.budget // search.steps
        search.complete([(j, Lineage(search.seed(j))) for j in range(count)])


@dataclass(frozen=True)
class EarlyPruningSearch(SearchStrategy):
    """best_of_n's early pruning on a budget: candidates in seed order while a whole video still fits;
    each previews its clean latents after ``step`` steps and stops there (``step + 1`` calls) when the
    preview is worse than the ``keep``-th best preview of the prompt so far."""

    step: int = 1
    keep: int = 1
    frames: int = 4
    name: ClassVar[str] = "early-pruning"

    def __post_init__(self) -> None:
        EarlyPruning(self.step, self.keep, self.frames)  # the same argument checks

    def check(self, steps: int, budget: int) -> None:
        super().check(steps, budget)
        if self.step >= steps:
            raise ValueError(f"early-pruning step={self.step} must be below num_inference_steps={steps}")

    def run(self, search: "PromptSearch") -> None:
        previews: list[float] = []
        j = 0
        while search.remaining >= search.steps:
            threshold = keep_threshold(previews, self.keep, search.higher_is_better)
            candidate = search.complete_unless_worse(j, Lineage(search.seed(j)), self.step, self.frames, threshold)
            previews.append(search.worst if candidate.preview_score is None else candidate.preview_score)
            j += 1


@dataclass(frozen=True)
class Resample(SearchStrategy):
    """Particle resampling (Feynman-Kac / SMC steering): ``particles`` videos denoised together; after each
    step count in ``at_steps`` their previews are scored and the population is resampled (systematic,
    softmax of the standardised previews at ``temperature``: 0 greedy, inf none). The first copy of a
    particle continues its trajectory; each further copy continues with ``renoise`` of its implied
    noise replaced by fresh noise from its own generator. Previews decode ``frames`` evenly spread
    frames (None: all, the faithful default: a reward shown other frames may rank them otherwise).
    Defaults: ``budget // steps`` particles, resampling after 1/4, 1/2 and 3/4 of the steps."""

    particles: int | None = None
    at_steps: tuple[int, ...] | None = None
    temperature: float = 0.3
    renoise: float = 0.5
    frames: int | None = None
    name: ClassVar[str] = "resample"

    def __post_init__(self) -> None:
        if self.particles is not None and self.particles < 1:
            raise ValueError(f"resample needs particles >= 1, got {self.particles}")
        if self.temperature < 0 or not 0 <= self.renoise <= 1 or (self.frames is not None and self.frames < 1):
            raise ValueError(f"resample needs temperature >= 0, renoise in [0, 1] and frames >= 1 (None: all), got {self}")
        if self.at_steps is not None:
            object.__setattr__(self, "at_steps", tuple(sorted({int(k) for k in self.at_steps})))

    def population(self, steps: int, budget: int) -> int:
        return self.particles if self.particles is not None else budget // steps

    def resampling_steps(self, steps: int) -> tuple[int, ...]:
        if self.at_steps is not None:
            return self.at_steps
        return tuple(sorted({max(1, round(steps * q)) for q in (0.25, 0.5, 0.75)} - {steps}))

    def check(self, steps: int, budget: int) -> None:
        super().check(steps, budget)
        if self.population(steps, budget) * steps > budget:
            raise ValueError(f"{self.particles} particles of {steps} steps need {self.particles * steps} denoiser calls; the budget is {budget}")
        wrong = [k for k in self.resampling_steps(steps) if not 1 <= k < steps]
        if wrong:
            raise ValueError(f"resampling steps {wrong} are outside 1 .. {steps - 1} (steps done before a resampling)")

    def run(self, search: "PromptSearch") -> None:
        sampler, count = search.sampler, self.population(search.steps, search.budget)
        lineages = [Lineage(search.seed(j)) for j in range(count)]
        particles = [sampler.initial(lineage) for lineage in lineages]
        rounds = {k: r for r, k in enumerate(self.resampling_steps(search.steps), start=1)}
        for index in range(search.steps):
            clean = search.predict_clean(particles, index)
            if index not in rounds:
                particles = [sampler.step(x, c, index) for x, c in zip(particles, clean)]
                continue
            rewards = [scored.value for scored in search.score_previews(clean, self.frames)]
            weights = resampling_weights(rewards, self.temperature, higher_is_better=search.higher_is_better)
            offset = float(torch.rand(1, generator=torch.Generator().manual_seed(search.round_seed(count, rounds[index]))))
            ancestors = systematic_resample(weights, offset)
            search.trace.setdefault("rounds", []).append({"step": index, "previews": rewards, "ancestors": ancestors})
            seen: set[int] = set()
            moved, moved_lineages = [], []
            for j, parent in enumerate(ancestors):
                duplicate = parent in seen and self.renoise > 0
                seen.add(parent)
                seed = search.round_seed(j, rounds[index]) if duplicate else None
                fresh = sampler.draw(seed) if seed is not None else None
                moved.append(sampler.step(particles[parent], clean[parent], index, fresh, self.renoise))
                event = Resampled(index, parent, seed, self.renoise if duplicate else 0.0)
                moved_lineages.append(lineages[parent].then_resampled(event))
            particles, lineages = moved, moved_lineages
        search.finish(list(enumerate(lineages)), particles)


@dataclass(frozen=True)
class NoiseSearch(SearchStrategy):
    """Zero-order search over the initial noise: ``first_round`` videos from candidate seeds, then rounds
    of ``per_round`` neighbours of the best so far, ``x' = sqrt(1 - r^2) x + r z`` (still unit
    Gaussian) at a radius ``r = radius * shrink^round``, keeping a neighbour only when it is better.
    Every evaluation is a finished video (``steps`` calls); by default half of them make the first round."""

    first_round: int | None = None
    per_round: int = 2
    radius: float = 0.5
    shrink: float = 0.7
    name: ClassVar[str] = "noise-search"

    def __post_init__(self) -> None:
        if (self.first_round is not None and self.first_round < 1) or self.per_round < 1:
            raise ValueError(f"noise-search needs first_round >= 1 and per_round >= 1, got {self}")
        if not 0 < self.radius <= 1 or not 0 < self.shrink <= 1:
            raise ValueError(f"noise-search needs radius and shrink in (0, 1], got {self}")

    def run(self, search: "PromptSearch") -> None:
        count = search.budget // search.steps
        first = min(count, self.first_round or max(1, count // 2))
        center = search.best(search.complete([(j, Lineage(search.seed(j))) for j in range(first)]))
        made, round_index = first, 0
        while made < count:
            radius = self.radius * self.shrink**round_index
            batch = range(made, min(count, made + self.per_round))
            neighbours = [(j, center.lineage.moved(NoiseMove(center.candidate_index, search.seed(j), radius))) for j in batch]
            challenger = search.best(search.complete(neighbours))
            center = search.best([center, challenger])
            made, round_index = made + len(batch), round_index + 1


STRATEGIES: dict[str, type[SearchStrategy]] = {
    cls.name: cls for cls in (BestOfN, EarlyPruningSearch, Resample, NoiseSearch)
}


def as_strategy(strategy: "SearchStrategy | str") -> SearchStrategy:
    """A strategy instance, or a strategy name with its default settings."""
    if isinstance(strategy, SearchStrategy):
        return strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown search strategy {strategy!r}; choose one of {sorted(STRATEGIES)}")
    return STRATEGIES[strategy]()


def best_of(candidates: "list[SearchCandidate]", higher_is_better: bool) -> "SearchCandidate":
    """The best candidate (the first among equals); failed and stopped ones lose to finished ones."""
    sign = 1.0 if higher_is_better else -1.0
    return max(candidates, key=lambda c: (c.finished, sign * c.score if c.finished else -math.inf, -c.candidate_index))
