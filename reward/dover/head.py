"""DOVER's quality head: a per-position MLP (1x1x1 convs) that turns features into a score map."""
from __future__ import annotations

import torch
from torch import nn


class VQAHead(nn.Module):
    """Dropout, ``fc_hid`` (1x1x1 conv), GELU, dropout, ``fc_last`` -> score map ``[N, 1, T, H, W]``.

    No pooling: the branch score is the mean of the map (see :func:`map_mean`), and the map
    itself shows where quality drops.
    """

    def __init__(self, in_channels: int = 768, hidden_channels: int = 64, dropout: float = 0.5):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc_hid = nn.Conv3d(in_channels, hidden_channels, kernel_size=1)
        self.act = nn.GELU()
        self.fc_last = nn.Conv3d(hidden_channels, 1, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc_last(self.dropout(self.act(self.fc_hid(self.dropout(features)))))


def map_mean(score_maps: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Branch score per video: the mean over all clips and positions of ``[B * clips, 1, T, H, W]`` maps."""
    return score_maps.reshape(batch_size, -1).mean(dim=1)
