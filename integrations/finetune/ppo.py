"""The PPO pieces of DDPO: advantage clipping, the clipped surrogate loss and a Gaussian KL penalty."""
from __future__ import annotations

from dataclasses import dataclass

import torch


def clip_advantages(advantages: torch.Tensor, max_abs: float) -> torch.Tensor:
    """Clamp advantages to [-max_abs, max_abs] so one outlier reward cannot dominate an update."""
    if max_abs <= 0:
        raise ValueError(f"advantage clip must be positive, got {max_abs}")
    return advantages.clamp(-max_abs, max_abs)


@dataclass
class PPOLoss:
    """The loss to minimise plus the diagnostics PPO runs log."""

    loss: torch.Tensor
    ratio: torch.Tensor
    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor


def ppo_clipped_loss(
    log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor, clip_range: float
) -> PPOLoss:
    """PPO's clipped surrogate: ``mean(max(-A * r, -A * clamp(r, 1 - eps, 1 + eps)))``, r = exp(lp - old_lp).

    All inputs are [B] (one log-prob per video for the current denoising step).
    """
    if log_probs.shape != old_log_probs.shape or log_probs.shape != advantages.shape:
        raise ValueError(
            f"log_probs {tuple(log_probs.shape)}, old_log_probs {tuple(old_log_probs.shape)} and advantages "
            f"{tuple(advantages.shape)} must have the same shape [B]"
        )
    difference = log_probs - old_log_probs.detach()
    ratio = torch.exp(difference)
    advantages = advantages.detach()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = torch.maximum(unclipped, clipped).mean()
    with torch.no_grad():
        approx_kl = 0.5 * (difference**2).mean()
        clip_fraction = ((ratio - 1.0).abs() > clip_range).float().mean()
    return PPOLoss(loss=loss, ratio=ratio, approx_kl=approx_kl, clip_fraction=clip_fraction)


def gaussian_kl(mean: torch.Tensor, reference_mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std^2) || N(reference_mean, std^2)) per sample, averaged over all non-batch dims.

    Both policies share the step's noise level, so the KL reduces to a scaled squared distance of
    the means; averaging (not summing) matches how the step log-probs are reduced.
    """
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    per_element = (mean - reference_mean) ** 2 / (2 * std**2)
    return per_element.flatten(1).mean(dim=1)
