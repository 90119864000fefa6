"""Normalise whatever a diffusers video pipeline returns into ``videos [B, T, 3, H, W]`` float in [0, 1]."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _frame_to_tensor(frame: Any) -> torch.Tensor:
    """One frame (PIL image, HWC/CHW array or tensor) as float [3, H, W] in [0, 1]."""
    if hasattr(frame, "convert") and hasattr(frame, "size"):  # PIL.Image
        frame = np.array(frame.convert("RGB"))
    tensor = frame if isinstance(frame, torch.Tensor) else torch.as_tensor(np.array(frame))
    if tensor.ndim != 3:
        raise ValueError(f"a frame must be 3-D (H, W, 3) or (3, H, W), got shape {tuple(tensor.shape)}")
    if tensor.shape[0] != 3 and tensor.shape[-1] == 3:
        tensor = tensor.permute(2, 0, 1)
    return _to_unit_float(tensor)


def _to_unit_float(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.dtype == torch.uint8:
        return tensor.float() / 255
    if not tensor.is_floating_point():
        raise ValueError(f"frames must be uint8 (0-255) or float in [0, 1], got {tensor.dtype}")
    return tensor.float()


def _video_to_tensor(video: Any) -> torch.Tensor:
    """One video (a tensor/array [T, 3, H, W] or [T, H, W, 3], or a list of frames) as [T, 3, H, W]."""
    if isinstance(video, (list, tuple)):
        return torch.stack([_frame_to_tensor(frame) for frame in video])
    tensor = video if isinstance(video, torch.Tensor) else torch.as_tensor(np.asarray(video))
    if tensor.ndim != 4:
        raise ValueError(f"a video must be 4-D (T, 3, H, W) or (T, H, W, 3), got shape {tuple(tensor.shape)}")
    if tensor.shape[1] != 3 and tensor.shape[-1] == 3:
        tensor = tensor.permute(0, 3, 1, 2)
    return _to_unit_float(tensor)


def to_videos(output: Any) -> torch.Tensor:
    """``videos [B, T, 3, H, W]`` float in [0, 1] from any pipeline output.

    Accepts a pipeline output object (``.frames``), a ``return_dict=False`` tuple, ``output_type``
    ``"pt"`` (B, T, 3, H, W), ``"np"`` (B, T, H, W, 3) float or uint8, ``"pil"`` (a list of lists of
    images), one video without the batch dimension, or a list of videos. Gradients are kept.
    """
    if hasattr(output, "frames"):
        output = output.frames
    elif isinstance(output, tuple) and len(output) == 1:
        output = output[0]
    if isinstance(output, (list, tuple)):
        if not output:
            raise ValueError("the pipeline output holds no videos")
        first = output[0]
        is_single_video_of_frames = hasattr(first, "convert") or (
            not isinstance(first, (list, tuple)) and np.ndim(first) == 3
        )
        if is_single_video_of_frames:
            return _video_to_tensor(output)[None]
        return torch.stack([_video_to_tensor(video) for video in output])
    tensor = output if isinstance(output, torch.Tensor) else torch.as_tensor(np.asarray(output))
    if tensor.ndim == 4:
        return _video_to_tensor(tensor)[None]
    if tensor.ndim != 5:
        raise ValueError(
            f"pipeline output of shape {tuple(tensor.shape)} is not a batch of videos; expected (B, T, 3, H, W) "
            "from output_type='pt' or (B, T, H, W, 3) from output_type='np'. Latents need adapter.decode()."
        )
    if tensor.shape[2] != 3 and tensor.shape[-1] == 3:
        tensor = tensor.permute(0, 1, 4, 2, 3)
    if tensor.shape[2] != 3:
        raise ValueError(f"pipeline output of shape {tuple(tensor.shape)} has no RGB channel axis (size 3)")
    return _to_unit_float(tensor)
