"""Checks on reward inputs: every bad input gets an error naming the problem and the fix."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .errors import RewardInputError

#: Values this far outside [0, 1] are rounding noise from a VAE decode, not a wrong range.
RANGE_TOLERANCE = 1e-2
#: What a device-side value assertion adds to its message: how to see the exact problem.
VIDEO_VALUES_HINT = "reward.validation.check_video_values(videos) on this batch names the values and the fix."


def check_videos(videos: torch.Tensor) -> torch.Tensor:
    """Validate ``videos`` [B, T, 3, H, W] float in [0, 1]; return it as a floating tensor.

    float64 stays float64 so gradients remain exact; integer inputs are refused because their
    scale (0-255) is ambiguous inside a differentiable reward.
    """
    if not isinstance(videos, torch.Tensor):
        raise RewardInputError(
            f"videos must be a torch.Tensor [B, T, 3, H, W] in [0, 1], got {type(videos).__name__}; "
            "read files with reward.video.read_video(path) or convert arrays with torch.as_tensor."
        )
    shape = tuple(videos.shape)
    if videos.ndim != 5:
        hint = ""
        if videos.ndim == 4:
            hint = (
                " A single video [T, 3, H, W] needs videos[None]; a batch of images [B, 3, H, W] "
                "needs images[:, None] (T = 1 scores an image)."
            )
        raise RewardInputError(f"videos must be 5-D [B, T, 3, H, W], got shape {shape}.{hint}")
    if shape[2] != 3:
        if shape[-1] == 3:
            raise RewardInputError(
                f"videos look channels-last {shape} ([B, T, H, W, 3]); rewards take [B, T, 3, H, W]: "
                "use videos.permute(0, 1, 4, 2, 3)."
            )
        raise RewardInputError(f"videos must have 3 RGB channels at dim 2 ([B, T, 3, H, W]), got shape {shape}.")
    if shape[0] == 0 or shape[1] == 0:
        raise RewardInputError(f"videos must hold at least one video of at least one frame, got shape {shape}.")
    if not videos.is_floating_point():
        raise RewardInputError(
            f"videos have dtype {videos.dtype}; rewards take floats in [0, 1]: use videos.float() / 255."
        )
    if shape[3] < 2 or shape[4] < 2:
        raise RewardInputError(f"frames must be at least 2x2 pixels, got {shape[3]}x{shape[4]}.")
    if videos.device.type == "cpu":
        check_video_values(videos)
    else:
        assert_video_values(videos)
    return videos


def check_video_values(videos: torch.Tensor) -> None:
    """Raise a ``RewardInputError`` naming the fix when ``videos`` hold NaN/Inf or values outside [0, 1].

    Reads the values back to the host: free on the CPU, a stall on an accelerator (call it on a
    GPU batch only to learn why :func:`assert_video_values` tripped).
    """
    with torch.no_grad():
        low, high = (float(value) for value in torch.aminmax(videos.detach()))
        if not (math.isfinite(low) and math.isfinite(high)):
            bad = (~torch.isfinite(videos)).nonzero()[0].tolist()
            raise RewardInputError(
                f"videos contain NaN or Inf (first at index {bad}); check the decoder output or clamp it."
            )
    if high > 1 + RANGE_TOLERANCE:
        raise RewardInputError(
            f"videos must be in [0, 1], got max {high:.3g}; 0-255 values need videos / 255."
        )
    if low < -RANGE_TOLERANCE:
        raise RewardInputError(
            f"videos must be in [0, 1], got min {low:.3g}; [-1, 1] values need (videos + 1) / 2."
        )


def assert_video_values(videos: torch.Tensor) -> None:
    """The checks of :func:`check_video_values` as device-side assertions: nothing waits for them.

    A failing batch stops the process at the device's next synchronisation with a device-side
    assertion carrying ``VIDEO_VALUES_MESSAGE``; rerun that batch through ``check_video_values``
    (or on the CPU) for the exact problem and its fix.
    """
    with torch.no_grad():
        low, high = torch.aminmax(videos.detach())
        torch._assert_async(torch.isfinite(low) & torch.isfinite(high), "videos contain NaN or Inf. " + VIDEO_VALUES_HINT)
        torch._assert_async(
            (low >= -RANGE_TOLERANCE) & (high <= 1 + RANGE_TOLERANCE), "videos must be in [0, 1]. " + VIDEO_VALUES_HINT
        )


def require(condition: torch.Tensor, message: str) -> None:
    """Raise ``RewardInputError(message)`` unless every element of ``condition`` is true.

    On the CPU the check is immediate; on an accelerator it is a device-side assertion, so the host
    never waits for the value.
    """
    if condition.device.type == "cpu":
        if not bool(condition.all()):
            raise RewardInputError(message)
    else:
        torch._assert_async(condition.all(), message)


def check_prompts(prompts: Sequence[str] | str | None, batch_size: int) -> list[str]:
    """Validate the prompts of a reward that reads them: one non-empty string per video.

    A single string is repeated for every video. Over-long prompts are not an error: each
    reward truncates them to its text encoder's context (documented per reward). Rewards that do
    not read prompts never call this, so they accept anything (e.g. "" from unconditional generation).
    """
    if prompts is None:
        raise RewardInputError(
            f"this reward is prompt-conditioned: pass prompts (a list of {batch_size} strings, or one string)."
        )
    if isinstance(prompts, str):
        prompts = [prompts] * batch_size
    if not isinstance(prompts, Sequence):
        raise RewardInputError(f"prompts must be a sequence of strings, got {type(prompts).__name__}.")
    prompts = list(prompts)
    if len(prompts) != batch_size:
        raise RewardInputError(
            f"got {len(prompts)} prompts for {batch_size} videos; pass exactly one prompt per video "
            "(or a single string for all)."
        )
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise RewardInputError(f"prompt {i} must be a str, got {type(prompt).__name__}.")
        if not prompt.strip():
            raise RewardInputError(f"prompt {i} is empty; give the text the video was generated from.")
    return prompts
