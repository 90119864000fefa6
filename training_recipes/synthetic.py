"""Synthetic AIGC-style video quality data, for tests and smoke runs only (not a benchmark).

Each clip shows a coloured shape moving over a grey textured background, degraded by controlled
blur, noise, flicker and colour fading; its prompt names a colour and a shape that match or
contradict the content. The MOS is a known function of these factors (``synthetic_mos``), so a
scorer that learns to see them reaches a high rank correlation quickly.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reward.video.io import write_video

from .data.items import QualityItem, write_manifest

COLOURS = {
    "red": (0.9, 0.12, 0.1),
    "green": (0.1, 0.75, 0.15),
    "blue": (0.12, 0.25, 0.95),
    "yellow": (0.95, 0.85, 0.1),
}
SHAPES = ("circle", "square")
#: Weight of each degradation in the quality term (they sum to 1).
DEGRADATION_WEIGHTS = {"blur": 0.35, "noise": 0.3, "flicker": 0.2, "fade": 0.15}
#: The background is the same grey in every clip, so flicker and fading are not confused with content.
BACKGROUND_GREY = 0.5
#: Noise standard deviation at full strength (strong enough for a tiny scorer to see at 32 pixels).
MAX_NOISE_STD = 0.25
#: Weight of a correct colour / shape word in the alignment term (they sum to 1).
ALIGNMENT_WEIGHTS = {"colour": 0.75, "shape": 0.25}
#: Probability that the prompt names the shown colour / shape.
MATCH_PROBABILITY = {"colour": 0.6, "shape": 0.7}


@dataclass(frozen=True)
class SyntheticFactors:
    """What a clip shows, what its prompt says, and how strongly each degradation (0..1) is applied."""

    colour: str
    shape: str
    prompt_colour: str
    prompt_shape: str
    blur: float
    noise: float
    flicker: float
    fade: float

    @property
    def prompt(self) -> str:
        return f"a {self.prompt_colour} {self.prompt_shape} moving across the frame"


def synthetic_mos(factors: SyntheticFactors, alignment_weight: float = 0.3) -> float:
    """MOS in [1, 5]: ``1 + 4 * ((1 - w) * quality + w * alignment)``.

    quality = 1 - sum of weighted degradations (``DEGRADATION_WEIGHTS``); alignment = 0.75 for the
    right colour word plus 0.25 for the right shape word (``ALIGNMENT_WEIGHTS``). With the default
    weight, a scorer that ignores the prompt cannot exceed SROCC ~0.65.
    """
    quality = 1 - sum(weight * getattr(factors, name) for name, weight in DEGRADATION_WEIGHTS.items())
    alignment = ALIGNMENT_WEIGHTS["colour"] * (factors.prompt_colour == factors.colour) + ALIGNMENT_WEIGHTS["shape"] * (
        factors.prompt_shape == factors.shape
    )
    return 1 + 4 * ((1 - alignment_weight) * quality + alignment_weight * alignment)


def sample_factors(rng: np.random.Generator) -> SyntheticFactors:
    """Draw content, prompt and degradation strengths (uniform in [0, 1])."""
    colours = sorted(COLOURS)
    colour, shape = str(rng.choice(colours)), str(rng.choice(SHAPES))
    prompt_colour = colour if rng.random() < MATCH_PROBABILITY["colour"] else str(rng.choice([c for c in colours if c != colour]))
    prompt_shape = shape if rng.random() < MATCH_PROBABILITY["shape"] else next(s for s in SHAPES if s != shape)
    strengths = rng.random(len(DEGRADATION_WEIGHTS))
    return SyntheticFactors(colour, shape, prompt_colour, prompt_shape, *map(float, strengths))


def render_clip(factors: SyntheticFactors, *, frames: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Render ``[frames, 3, size, size]`` in [0, 1]: the clean clip, then blur, fading, flicker and noise."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator)

    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    texture = 0.08 * torch.sign(torch.sin(x * size * math.pi / 2) * torch.sin(y * size * math.pi / 2))
    background = (BACKGROUND_GREY + 0.15 * (y - 0.5) + texture).expand(frames, 3, size, size)

    start, velocity = 0.3 + 0.4 * rand(2), (rand(2) - 0.5) * 0.4
    time = torch.linspace(0, 1, frames).view(frames, 1, 1)
    cy, cx = start[0] + velocity[0] * time, start[1] + velocity[1] * time
    radius = 0.25
    if factors.shape == "circle":
        distance = torch.sqrt((y - cy) ** 2 + (x - cx) ** 2) - radius
    else:
        distance = torch.maximum((y - cy).abs(), (x - cx).abs()) - radius * 0.9
    mask = torch.sigmoid(-distance * size * 2).unsqueeze(1)
    colour = torch.tensor(COLOURS[factors.colour]).view(1, 3, 1, 1)
    video = background * (1 - mask) + colour * mask

    video = _blur(video, sigma=factors.blur * size / 16)
    luma = (video * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    video = luma + (1 - 0.85 * factors.fade) * (video - luma)
    signs = torch.where(rand(frames) < 0.5, -1.0, 1.0).view(frames, 1, 1, 1)
    video = video + 0.2 * factors.flicker * signs
    video = video + MAX_NOISE_STD * factors.noise * torch.randn(video.shape, generator=generator)
    return video.clamp(0, 1)


def _blur(video: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma < 0.05:
        return video
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = video.shape[1]
    padded = F.pad(video, (radius, radius, radius, radius), mode="replicate")
    horizontal = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(horizontal, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def synthetic_items(
    count: int, *, seed: int = 0, frames: int = 8, size: int = 32, alignment_weight: float = 0.3
) -> list[QualityItem]:
    """``count`` in-memory items (tensor sources); item i depends only on (seed, i)."""
    items = []
    for index in range(count):
        factors = sample_factors(np.random.default_rng([seed, index]))
        clip = render_clip(factors, frames=frames, size=size, seed=seed * 1_000_003 + index)
        items.append(
            QualityItem(clip, factors.prompt, synthetic_mos(factors, alignment_weight), name=f"synthetic_{index:05d}", extra=asdict(factors))
        )
    return items


def write_synthetic_dataset(
    folder: str | Path,
    count: int,
    *,
    seed: int = 0,
    frames: int = 8,
    size: int = 32,
    alignment_weight: float = 0.3,
    video_format: str = "frames",
) -> Path:
    """Write ``count`` clips into ``folder`` plus ``manifest.jsonl``; returns the manifest path.

    ``video_format`` is ``"frames"`` (a PNG frame folder per clip, lossless) or a container suffix
    such as ``"mp4"`` (near-lossless H.264, which still softens the noise the MOS was computed
    from). The manifest has the generic columns (path, prompt, mos) and every factor, so
    ``read_table(manifest)`` loads it.
    """
    folder = Path(folder)
    suffix = "" if video_format == "frames" else f".{video_format}"
    written = []
    for item in synthetic_items(count, seed=seed, frames=frames, size=size, alignment_weight=alignment_weight):
        target = write_video(folder / f"{item.name}{suffix}", item.source)
        written.append(QualityItem(target, item.prompt, item.mos, extra=item.extra))
    return write_manifest(written, folder / "manifest.jsonl")
