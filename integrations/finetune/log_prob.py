"""Stochastic sampler steps that also return the log-probability of the step (the DDPO policy).

Both steps work on latents of any rank (5-D video latents [B, C, F, h, w] included) and return one
log-prob per sample, the Gaussian log-density averaged over every non-batch element (as DDPO and
trl do), so a whole video is one action.

**DDIM with eta > 0** (Song et al. 2021, eqs. 12 and 16)::

    x0    = prediction converted to the clean sample (epsilon / v / sample parameterisations)
    sigma = eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    mean  = sqrt(a_prev) * x0 + sqrt(1 - a_prev - sigma^2) * eps
    x_prev ~ N(mean, sigma^2)

**Flow-matching SDE** (the Flow-GRPO step). With ``x_s = (1 - s) x0 + s * noise`` and the model
predicting the velocity ``v = noise - x0`` (diffusers' convention: the Euler ODE step is
``x + (s_next - s) v``), the score is ``-(x + (1 - s) v) / s``. The reverse-time SDE with the same
marginals as the ODE, diffusion ``g(s)`` and step ``d = s - s_next > 0``, discretised by Euler-Maruyama::

    mean  = x - d * (v + g^2 / (2 s) * (x + (1 - s) v))
    std   = g * sqrt(d),   g(s) = noise_level * sqrt(s / (1 - min(s, sigma_cap)))
    x_next ~ N(mean, std^2)

``sigma_cap`` (the largest sigma below 1 of the schedule) keeps ``g`` finite at s = 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class StochasticStep:
    """One sampler step: the next latents, their log-prob per sample, and the Gaussian they came from."""

    prev_sample: torch.Tensor
    log_prob: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor


def gaussian_log_prob(value: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Log-density of ``value`` under N(mean, std^2), averaged over all non-batch elements -> [B]."""
    per_element = -((value.detach() - mean) ** 2) / (2 * std**2) - torch.log(std) - LOG_SQRT_2PI
    return per_element.flatten(1).mean(dim=1)


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """View a scalar or [B] tensor as [B, 1, ..., 1] (or a scalar) so it broadcasts over ``like``."""
    values = values.to(device=like.device, dtype=torch.float32)
    if values.ndim == 0:
        return values
    return values.reshape(values.shape[0], *([1] * (like.ndim - 1)))


def _draw(mean: torch.Tensor, std: torch.Tensor, generator: Any, prev_sample: torch.Tensor | None) -> torch.Tensor:
    if prev_sample is not None and generator is not None:
        raise ValueError("pass either prev_sample (to score a recorded step) or generator (to sample), not both")
    if prev_sample is not None:
        return prev_sample.float()
    noise = randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + std * noise


def ddim_step_with_log_prob(
    scheduler: Any,
    model_output: torch.Tensor,
    timestep: int | torch.Tensor,
    sample: torch.Tensor,
    *,
    eta: float,
    generator: torch.Generator | list[torch.Generator] | None = None,
    prev_sample: torch.Tensor | None = None,
) -> StochasticStep:
    """One DDIM step with noise (``eta`` > 0) and its log-prob; ``timestep`` may be per sample ([B]).

    Pass ``prev_sample`` to re-score a recorded step (training), or a ``generator`` to draw one.
    """
    if scheduler.num_inference_steps is None:
        raise ValueError("the scheduler has no timesteps yet: call scheduler.set_timesteps(num_steps) first")
    if eta <= 0:
        raise ValueError(f"eta must be > 0 for a stochastic DDIM step with a log-prob, got {eta}")
    if scheduler.config.get("thresholding", False):
        raise ValueError("dynamic thresholding has no Gaussian log-prob; build the scheduler with thresholding=False")
    timestep = torch.as_tensor(timestep, device="cpu").long()
    prev_timestep = timestep - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    alphas_cumprod = scheduler.alphas_cumprod.cpu().double()
    alpha_t = alphas_cumprod[timestep]
    alpha_prev = torch.where(
        prev_timestep >= 0,
        alphas_cumprod[prev_timestep.clamp(min=0)],
        torch.as_tensor(float(scheduler.final_alpha_cumprod), dtype=torch.float64),
    )
    variance = (1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)
    if bool((variance <= 0).any()):
        raise ValueError(
            f"the DDIM step from timestep {timestep.tolist()} is deterministic (zero noise), so it has no "
            "log-prob; build the scheduler with set_alpha_to_one=False and steps_offset=1 (or "
            "timestep_spacing='trailing'), as integrations.finetune.sampling.ddpo_scheduler does"
        )
    sample32, output32 = sample.float(), model_output.float()
    alpha_t, alpha_prev = _per_sample(alpha_t, sample32), _per_sample(alpha_prev, sample32)
    std = eta * _per_sample(variance.sqrt(), sample32)
    beta_t = 1 - alpha_t
    prediction = scheduler.config.prediction_type
    if prediction == "epsilon":
        x0, eps = (sample32 - beta_t.sqrt() * output32) / alpha_t.sqrt(), output32
    elif prediction == "v_prediction":
        x0 = alpha_t.sqrt() * sample32 - beta_t.sqrt() * output32
        eps = alpha_t.sqrt() * output32 + beta_t.sqrt() * sample32
    elif prediction == "sample":
        x0, eps = output32, (sample32 - alpha_t.sqrt() * output32) / beta_t.sqrt()
    else:
        raise ValueError(f"unsupported prediction_type {prediction!r}; use epsilon, v_prediction or sample")
    if scheduler.config.clip_sample:
        x0 = x0.clamp(-scheduler.config.clip_sample_range, scheduler.config.clip_sample_range)
    direction = (1 - alpha_prev - std**2).clamp(min=0).sqrt() * eps
    mean = alpha_prev.sqrt() * x0 + direction
    std = std.expand_as(mean)
    drawn = _draw(mean, std, generator, prev_sample)
    return StochasticStep(drawn.to(sample.dtype), gaussian_log_prob(drawn, mean, std), mean, std)


def sde_noise_scale(sigma: torch.Tensor, noise_level: float, sigma_cap: float | None) -> torch.Tensor:
    """Diffusion coefficient ``g(s) = noise_level * sqrt(s / (1 - min(s, sigma_cap)))`` of the flow SDE."""
    cap = sigma if sigma_cap is None else sigma.clamp(max=sigma_cap)
    if bool((cap >= 1).any()):
        raise ValueError("sigma = 1 makes the flow SDE noise infinite; pass sigma_cap (the schedule's second sigma)")
    return noise_level * (sigma / (1 - cap)).sqrt()


def flow_sde_step_with_log_prob(
    model_output: torch.Tensor,
    sigma: float | torch.Tensor,
    sigma_next: float | torch.Tensor,
    sample: torch.Tensor,
    *,
    noise_level: float = 0.7,
    sigma_cap: float | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    prev_sample: torch.Tensor | None = None,
) -> StochasticStep:
    """One stochastic flow-matching step from ``sigma`` down to ``sigma_next`` and its log-prob.

    ``model_output`` is the predicted velocity; ``sigma``/``sigma_next`` are scalars or per-sample [B].
    """
    if noise_level <= 0:
        raise ValueError(f"noise_level must be > 0 for a stochastic step with a log-prob, got {noise_level}")
    sample32, velocity = sample.float(), model_output.float()
    sigma = _per_sample(torch.as_tensor(sigma, dtype=torch.float32), sample32)
    sigma_next = _per_sample(torch.as_tensor(sigma_next, dtype=torch.float32), sample32)
    if bool((sigma_next >= sigma).any()) or bool((sigma <= 0).any()):
        raise ValueError("a denoising step needs 0 < sigma and sigma_next < sigma")
    step = sigma - sigma_next
    g = sde_noise_scale(sigma, noise_level, sigma_cap)
    drift = velocity + g**2 / (2 * sigma) * (sample32 + (1 - sigma) * velocity)
    mean = sample32 - step * drift
    std = (g * step.sqrt()).expand_as(mean)
    drawn = _draw(mean, std, generator, prev_sample)
    return StochasticStep(drawn.to(sample.dtype), gaussian_log_prob(drawn, mean, std), mean, std)
