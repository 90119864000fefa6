"""DOVER's aesthetic backbone: ConvNeXt-T inflated to 3-D (temporal kernels "131").

Parameter names follow ``aesthetic_backbone.*`` in DOVER.pth, so loading is a prefix strip.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import DropPath, calculate_drop_path_rates
from torch import nn

from ..precision import maybe_checkpoint

#: LayerNorm epsilon used everywhere in the ConvNeXt backbone.
LAYER_NORM_EPS = 1e-6


@dataclass
class ConvNeXt3DConfig:
    """Sizes of the aesthetic ConvNeXt-3D; the defaults are DOVER's ConvNeXt-T."""

    dims: tuple[int, ...] = (96, 192, 384, 768)
    depths: tuple[int, ...] = (3, 3, 9, 3)
    inflate_strategy: str = "131"
    drop_path_rate: float = 0.0
    in_channels: int = 3

    def __post_init__(self) -> None:
        self.dims = tuple(int(d) for d in self.dims)
        self.depths = tuple(int(d) for d in self.depths)
        if len(self.dims) != len(self.depths):
            raise ValueError(f"dims {self.dims} and depths {self.depths} must have one entry per stage")
        if not self.inflate_strategy or set(self.inflate_strategy) - set("13579"):
            raise ValueError(f"inflate_strategy {self.inflate_strategy!r} must be odd temporal kernel sizes, e.g. '131'")

    @property
    def num_features(self) -> int:
        return self.dims[-1]


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channel axis of ``[B, C, T, H, W]`` (biased variance, eps 1e-6)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 4, 1), self.weight.shape, self.weight, self.bias, LAYER_NORM_EPS)
        return x.permute(0, 4, 1, 2, 3)


class ConvNeXtBlock3D(nn.Module):
    """Depthwise (t, 7, 7) conv, LayerNorm, MLP (x4, GELU), layer scale ``gamma``, residual."""

    def __init__(self, dim: int, temporal_kernel: int, drop_path: float, layer_scale: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv3d(
            dim, dim, kernel_size=(temporal_kernel, 7, 7), padding=(temporal_kernel // 2, 3, 3), groups=dim
        )
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def depthwise(self, x: torch.Tensor) -> torch.Tensor:
        """The depthwise conv; on CPU always in fp32: oneDNN has no fast low-precision depthwise Conv3d
        (its bf16 backward is ~2.7x slower than fp32), and the op is memory-bound, so autocast gains nothing.
        On CUDA the input is made contiguous: the residual leaves it channels-last-3d, where cuDNN's depthwise
        Conv3d takes a slow path (5-50x per call on an H200, benchmarks/RESULTS.md "GPU check")."""
        if x.device.type == "cuda":
            return self.dwconv(x.contiguous())
        if x.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
            return self.dwconv(x)
        with torch.autocast("cpu", enabled=False):
            weight, bias = self.dwconv.weight.float(), self.dwconv.bias.float()  # no-ops unless stored in bf16
            return self.dwconv._conv_forward(x.float(), weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(x).permute(0, 2, 3, 4, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y)))) * self.gamma
        return x + self.drop_path(y.permute(0, 4, 1, 2, 3))


class ConvNeXt3D(nn.Module):
    """Aesthetic backbone: ``[N, 3, T, H, W]`` normalised clips -> features ``[N, C, T/2, H/32, W/32]``."""

    #: A backbone for reward.precision.backbone_modules (low-precision weight storage, compilation).
    is_backbone = True

    def __init__(self, config: ConvNeXt3DConfig):
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        dims = config.dims
        stem = nn.Sequential(
            nn.Conv3d(config.in_channels, dims[0], kernel_size=(2, 4, 4), stride=(2, 4, 4)),
            ChannelsFirstLayerNorm(dims[0]),
        )
        self.downsample_layers = nn.ModuleList([stem])
        for i in range(1, len(dims)):
            self.downsample_layers.append(
                nn.Sequential(
                    ChannelsFirstLayerNorm(dims[i - 1]),
                    nn.Conv3d(dims[i - 1], dims[i], kernel_size=(1, 2, 2), stride=(1, 2, 2)),
                )
            )
        rates = calculate_drop_path_rates(config.drop_path_rate, list(config.depths), stagewise=True)
        kernels = config.inflate_strategy
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtBlock3D(dims[s], int(kernels[j % len(kernels)]), rates[s][j]) for j in range(depth)))
            for s, depth in enumerate(config.depths)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for downsample, stage in zip(self.downsample_layers, self.stages):
            x = downsample(x)
            for block in stage:
                x = maybe_checkpoint(block, x, enabled=self.gradient_checkpointing)
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
