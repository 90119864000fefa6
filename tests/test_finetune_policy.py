"""DDPO building blocks: per-prompt stat tracking, PPO loss, DDIM / flow-SDE step log-probs, KL, and the
scheduler DDPO samples with."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import (
    CogVideoXDDIMScheduler,
    CogVideoXDPMScheduler,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
)

from integrations.finetune.log_prob import ddim_step_with_log_prob, flow_sde_step_with_log_prob
from integrations.finetune.ppo import clip_advantages, gaussian_kl, ppo_clipped_loss
from integrations.finetune.sampling import ddpo_scheduler
from integrations.finetune.stat_tracker import PerPromptStatTracker


def _ddim(**overrides) -> DDIMScheduler:
    config = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                  set_alpha_to_one=False, steps_offset=1)
    config.update(overrides)
    scheduler = DDIMScheduler(**config)
    scheduler.set_timesteps(4)
    return scheduler


# -- stat tracker ----------------------------------------------------------------------------------
def test_stat_tracker_matches_trl_semantics_over_several_batches():
    trl_utils = pytest.importorskip("trl.trainer.utils")
    ours, theirs = PerPromptStatTracker(5, 3), trl_utils.PerPromptStatTracker(5, 3)
    rng = np.random.default_rng(0)
    for _ in range(4):
        prompts = list(rng.choice(["fox", "cat", "owl"], size=6))
        rewards = rng.normal(size=6)
        expected = theirs.update(prompts, rewards)
        np.testing.assert_allclose(ours.update(prompts, torch.tensor(rewards)).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_stat_tracker_falls_back_to_batch_statistics_then_uses_the_prompt_buffer():
    tracker = PerPromptStatTracker(buffer_size=4, min_count=3)
    first = tracker.update(["a", "a", "b"], [1.0, 3.0, 5.0])
    batch = np.array([1.0, 3.0, 5.0])
    np.testing.assert_allclose(first.numpy(), (batch - batch.mean()) / (batch.std() + 1e-6), rtol=1e-5)
    second = tracker.update(["a", "a"], [5.0, 7.0])  # buffer "a" = [1, 3, 5, 7]: its own statistics now
    buffer = np.array([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(second.numpy(), (np.array([5.0, 7.0]) - buffer.mean()) / (buffer.std() + 1e-6), rtol=1e-5)
    tracker.update(["a"], [9.0])
    assert list(tracker.buffers["a"]) == [3.0, 5.0, 7.0, 9.0]  # rolling window of buffer_size


def test_stat_tracker_state_round_trip_and_bad_input():
    tracker = PerPromptStatTracker(4, 2)
    tracker.update(["x", "y", "x"], [0.1, 0.2, 0.3])
    restored = PerPromptStatTracker(1, 1)
    restored.load_state_dict(tracker.state_dict())
    assert torch.equal(restored.update(["x", "y"], [1.0, 2.0]), tracker.update(["x", "y"], [1.0, 2.0]))
    with pytest.raises(ValueError, match="one reward per prompt"):
        tracker.update(["x"], [1.0, 2.0])


# -- PPO -------------------------------------------------------------------------------------------
def test_ppo_loss_at_ratio_one_is_the_policy_gradient_and_clips_outside_the_range():
    advantages = torch.tensor([1.0, -2.0, 0.5])
    old = torch.tensor([-1.0, -2.0, -3.0])
    new = old.clone().requires_grad_(True)
    out = ppo_clipped_loss(new, old, advantages, clip_range=0.2)
    assert torch.allclose(out.ratio, torch.ones(3)) and float(out.approx_kl) == 0.0
    assert torch.isclose(out.loss, -advantages.mean())
    out.loss.backward()
    assert torch.allclose(new.grad, -advantages / 3)
    far = ppo_clipped_loss(old + torch.tensor([1.0, 0.0, 0.0]), old, advantages, clip_range=0.2)
    assert float(far.clip_fraction) == pytest.approx(1 / 3)
    # positive advantage with ratio e > 1.2: the clipped term (-1.2) is the max, so the loss is flat there
    assert float(far.loss) == pytest.approx((-1.2 * 1.0 + 2.0 - 0.5) / 3, rel=1e-5)
    assert torch.equal(clip_advantages(torch.tensor([-9.0, 0.3, 9.0]), 5.0), torch.tensor([-5.0, 0.3, 5.0]))


def test_gaussian_kl_is_zero_for_equal_means_and_scaled_distance_otherwise():
    mean = torch.randn(2, 3, 4)
    assert torch.equal(gaussian_kl(mean, mean, torch.tensor(0.5)), torch.zeros(2))
    assert torch.allclose(gaussian_kl(mean + 1.0, mean, torch.tensor(0.5)), torch.full((2,), 2.0))


# -- DDIM step ------------------------------------------------------------------------------------
def test_ddim_step_mean_matches_diffusers_on_video_latents_and_gives_one_log_prob_per_video():
    scheduler = _ddim()
    sample, output = torch.randn(2, 4, 3, 5, 5), torch.randn(2, 4, 3, 5, 5)
    t = scheduler.timesteps[1]
    step = ddim_step_with_log_prob(scheduler, output, t, sample, eta=1.0, generator=torch.Generator().manual_seed(0))
    reference = scheduler.step(output, t, sample, eta=1.0, variance_noise=torch.zeros_like(sample)).prev_sample
    assert torch.allclose(step.mean, reference, atol=1e-5)
    assert step.log_prob.shape == (2,) and torch.isfinite(step.log_prob).all()
    again = ddim_step_with_log_prob(scheduler, output, t, sample, eta=1.0, prev_sample=step.prev_sample)
    assert torch.equal(again.log_prob, step.log_prob)


def test_ddim_log_prob_equals_trl_and_per_sample_timesteps_equal_scalar_ones():
    trl_sd = pytest.importorskip("trl.models.modeling_sd_base")
    scheduler = _ddim()
    sample, output = torch.randn(2, 4, 3, 5, 5), torch.randn(2, 4, 3, 5, 5)
    for t in scheduler.timesteps:
        ours = ddim_step_with_log_prob(scheduler, output, t, sample, eta=0.8, generator=torch.Generator().manual_seed(1))
        theirs = trl_sd.scheduler_step(scheduler, output, t, sample, eta=0.8, prev_sample=ours.prev_sample)
        assert torch.allclose(ours.log_prob, theirs.log_probs, atol=1e-4)
        batched = ddim_step_with_log_prob(scheduler, output, t.repeat(2), sample, eta=0.8, prev_sample=ours.prev_sample)
        assert torch.allclose(batched.log_prob, ours.log_prob, atol=1e-6)


def test_ddim_step_refuses_a_deterministic_final_step_with_the_fix():
    scheduler = _ddim(steps_offset=0)
    sample = torch.randn(1, 4, 2, 3, 3)
    with pytest.raises(ValueError, match="steps_offset=1"):
        ddim_step_with_log_prob(scheduler, sample, scheduler.timesteps[-1], sample, eta=1.0)
    with pytest.raises(ValueError, match="eta must be > 0"):
        ddim_step_with_log_prob(_ddim(), sample, 1, sample, eta=0.0)


# -- the scheduler DDPO samples with ----------------------------------------------------------------
def _every_step_has_a_log_prob(scheduler, steps: int = 3) -> bool:
    scheduler.set_timesteps(steps)
    sample = torch.randn(1, 4, 2, 3, 3)
    return all(
        torch.isfinite(ddim_step_with_log_prob(scheduler, sample, t, sample, eta=1.0, generator=torch.Generator()).log_prob).all()
        for t in scheduler.timesteps
    )


def test_ddpo_scheduler_keeps_cogvideox_noise_schedule_and_frees_its_last_step():
    released = CogVideoXDDIMScheduler(  # CogVideoX-2b: trailing spacing, zero terminal SNR, set_alpha_to_one
        clip_sample=False, prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing"
    )
    with pytest.raises(ValueError, match="deterministic"):
        _every_step_has_a_log_prob(released)
    for source in (released, CogVideoXDPMScheduler.from_config(released.config)):
        fixed, changes = ddpo_scheduler(source)
        assert isinstance(fixed, CogVideoXDDIMScheduler) and not fixed.config.set_alpha_to_one
        assert torch.equal(fixed.alphas_cumprod, released.alphas_cumprod)  # the SNR shift the model was trained on
        assert "set_alpha_to_one: True -> False" in changes
        assert _every_step_has_a_log_prob(fixed)
    assert ddpo_scheduler(CogVideoXDPMScheduler.from_config(released.config))[1][0] == (
        "CogVideoXDPMScheduler -> CogVideoXDDIMScheduler"
    )


@pytest.mark.parametrize(
    "source, change",
    [
        (DDIMScheduler(timestep_spacing="linspace", set_alpha_to_one=False), "timestep_spacing: 'linspace' -> 'trailing'"),
        (DDIMScheduler(steps_offset=0, set_alpha_to_one=False), "steps_offset: 0 -> 1"),
        (DDIMScheduler(steps_offset=1, thresholding=True, set_alpha_to_one=False), "thresholding: True -> False"),
        (DPMSolverMultistepScheduler(beta_schedule="scaled_linear"), "DPMSolverMultistepScheduler -> DDIMScheduler"),
    ],
)
def test_ddpo_scheduler_fixes_ddim_steps_without_a_log_prob(source, change):
    fixed, changes = ddpo_scheduler(source)
    assert change in changes and isinstance(fixed, DDIMScheduler)
    assert torch.allclose(fixed.alphas_cumprod, source.alphas_cumprod)
    assert _every_step_has_a_log_prob(fixed)


def test_ddpo_scheduler_leaves_fitting_and_flow_schedulers_alone():
    fitting = _ddim()
    flow = FlowMatchEulerDiscreteScheduler(shift=3.0)
    assert ddpo_scheduler(fitting) == (fitting, []) and ddpo_scheduler(flow) == (flow, [])


# -- flow-matching SDE step -------------------------------------------------------------------------
def test_flow_sde_step_reduces_to_the_euler_ode_step_as_noise_vanishes():
    scheduler = FlowMatchEulerDiscreteScheduler()
    scheduler.set_timesteps(4)
    sample, velocity = torch.randn(2, 4, 3, 5, 5), torch.randn(2, 4, 3, 5, 5)
    euler = scheduler.step(velocity, scheduler.timesteps[1], sample).prev_sample
    sigma, sigma_next = scheduler.sigmas[1], scheduler.sigmas[2]
    step = flow_sde_step_with_log_prob(velocity, sigma, sigma_next, sample, noise_level=1e-4)
    assert torch.allclose(step.mean, euler, atol=1e-5)
    assert step.log_prob.shape == (2,)
    with pytest.raises(ValueError, match="sigma_cap"):
        flow_sde_step_with_log_prob(velocity, 1.0, 0.5, sample)


def test_flow_sde_sampler_keeps_the_marginals_of_the_flow():
    """1-D Gaussian data N(0, s^2) has a closed-form velocity; the SDE must still end at N(0, s^2)."""
    s, steps, n = 0.5, 40, 40000
    generator = torch.Generator().manual_seed(0)
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    x = torch.randn(n, 1, generator=generator)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        variance = (1 - sigma) ** 2 * s**2 + sigma**2
        expected_noise = sigma * x / variance
        velocity = x if sigma == 1 else (expected_noise - x) / (1 - sigma)
        x = flow_sde_step_with_log_prob(
            velocity, sigma, sigma_next, x, noise_level=0.7, sigma_cap=float(sigmas[1]), generator=generator
        ).prev_sample
    assert float(x.std()) == pytest.approx(s, rel=0.05)
    assert abs(float(x.mean())) < 0.02
