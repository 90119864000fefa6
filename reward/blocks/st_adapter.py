"""ST-Adapter: a zero-initialised temporal bottleneck that lets per-frame ViT tokens see neighbouring frames.

Linear(C, Ca) -> depthwise Conv3d over (T, H, W) with kernel (3, 1, 1) -> [activation] -> Linear(Ca, C),
added to the patch tokens; the CLS token passes through. With the conv and both biases at zero the
adapter is the identity, so a pretrained image model is unchanged until training moves it.
"""
from __future__ import annotations

import math

import torch
from torch import nn

#: Activations allowed after the temporal conv. The public ST-Adapter module has none (``None``);
#: the AIGC-VQA paper draws one. ReLU is not offered: its zero gradient at 0 would freeze a
#: zero-initialised adapter at the identity forever.
ACTIVATIONS = {None: nn.Identity, "gelu": nn.GELU}


class STAdapter(nn.Module):
    """Tokens [B*T, 1 + H*W, C] (frames of a video contiguous, CLS first) -> same shape, not in place."""

    def __init__(self, channels: int, adapter_channels: int, kernel_frames: int = 3, activation: str | None = None):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown ST-Adapter activation {activation!r}; choose one of {list(ACTIVATIONS)}")
        if kernel_frames % 2 != 1:
            raise ValueError(f"kernel_frames must be odd so frames stay aligned, got {kernel_frames}")
        self.fc1 = nn.Linear(channels, adapter_channels)
        self.conv = nn.Conv3d(
            adapter_channels,
            adapter_channels,
            kernel_size=(kernel_frames, 1, 1),
            padding=(kernel_frames // 2, 0, 0),
            groups=adapter_channels,
        )
        self.activation = ACTIVATIONS[activation]()
        self.fc2 = nn.Linear(adapter_channels, channels)
        self.reset_to_identity()

    def reset_to_identity(self) -> None:
        """Zero the conv and both biases (the public initialisation): the adapter then returns its input."""
        for tensor in (self.conv.weight, self.conv.bias, self.fc1.bias, self.fc2.bias):
            nn.init.zeros_(tensor)

    def forward(self, tokens: torch.Tensor, num_frames: int) -> torch.Tensor:
        frames_times_batch, length, _ = tokens.shape
        if frames_times_batch % num_frames:
            raise ValueError(f"{frames_times_batch} token rows do not split into videos of {num_frames} frames")
        side = math.isqrt(length - 1)
        if side * side != length - 1:
            raise ValueError(f"expected 1 CLS + a square grid of patch tokens, got {length} tokens")
        batch = frames_times_batch // num_frames
        patches = self.fc1(tokens[:, 1:])
        width = patches.shape[-1]
        grid = patches.reshape(batch, num_frames, side, side, width).permute(0, 4, 1, 2, 3)
        grid = self.activation(self.conv(grid))
        patches = grid.permute(0, 2, 3, 4, 1).reshape(frames_times_batch, side * side, width)
        return torch.cat([tokens[:, :1], tokens[:, 1:] + self.fc2(patches)], dim=1)
