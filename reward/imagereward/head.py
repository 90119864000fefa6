"""ImageReward's score head: a stack of Linear layers with dropout and no activations, then a fixed normalisation."""
from __future__ import annotations

import torch
from torch import nn

#: ImageReward normalises the raw head output with these training-set statistics.
REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
#: Hidden widths fixed inside ImageReward's MLP class.
HIDDEN_WIDTHS = (1024, 128, 64, 16)
DROPOUTS = (0.2, 0.2, 0.1)


class ImageRewardHead(nn.Module):
    """CLS feature [N, C] -> normalised reward [N] (``raw`` gives the head output before normalising).

    Layer indices follow the checkpoint (``layers.{0,2,4,6,7}`` are the Linears). There is no
    activation between them, exactly as released, so the head is one affine map in disguise.
    """

    def __init__(self, in_features: int):
        super().__init__()
        widths = (in_features, *HIDDEN_WIDTHS)
        modules: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            modules.append(nn.Linear(n_in, n_out))
            if i < len(DROPOUTS):
                modules.append(nn.Dropout(DROPOUTS[i]))
        modules.append(nn.Linear(widths[-1], 1))
        self.layers = nn.Sequential(*modules)

    def raw(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).squeeze(-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (self.raw(features) - REWARD_MEAN) / REWARD_STD
