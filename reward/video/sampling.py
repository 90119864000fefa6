"""Frame index samplers: which frames of a video a model looks at."""
from __future__ import annotations

import torch


def uniform_frame_indices(num_frames: int, count: int) -> torch.Tensor:
    """``count`` indices spread evenly over ``num_frames`` (segment centres); repeats frames when short.

    Deterministic, so a reward stays a function of the video.
    """
    if num_frames < 1 or count < 1:
        raise ValueError(f"need at least one frame and one index, got num_frames={num_frames}, count={count}")
    positions = (torch.arange(count, dtype=torch.float64) + 0.5) * num_frames / count
    return positions.floor().clamp_(max=num_frames - 1).long()
