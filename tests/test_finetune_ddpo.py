"""Video DDPO trainer: one epoch on every supported family, ratio 1 before any update, flow-matching SDE
policy, KL to the base model, async reward, exact resume, and learning a simple reward on held-out seeds."""
from __future__ import annotations

import pytest
import torch

import logging

from integrations.diffusers import TINY_FAMILIES, build_tiny_pipeline, tiny_generation_kwargs
from integrations.diffusers.adapters import adapter_for
from integrations.finetune.ddpo import DDPOConfig, VideoDDPOTrainer
from integrations.finetune.ppo import ppo_clipped_loss
from integrations.finetune.sampling import DDIMPolicy, FlowSDEPolicy, StochasticPolicy
from tests.diffusers_support import FLOW_FAMILIES, one_thread  # noqa: F401  (autouse fixture)


def _config(tmp_path, family: str = "text-to-video-sd", **overrides) -> DDPOConfig:
    size = tiny_generation_kwargs(family)
    size.setdefault("max_sequence_length", None)
    size.pop("prompt_template", None)  # HunyuanVideo's adapter uses the pipeline's default template
    settings = dict(
        prompts=["a cat", "a dog"], **size, num_inference_steps=3, guidance_scale=1.0, reward="colorfulness",
        lora_rank=4, learning_rate=3e-2, weight_decay=0.0, sample_batch_size=4, sample_batches_per_epoch=2,
        samples_per_prompt=2, train_batch_size=4, clip_range=0.2, stat_min_count=2, max_steps=1, eval_every=0,
        output_dir=str(tmp_path / "run"), save_every=1000,
    )
    settings.update(overrides)
    return DDPOConfig(**settings)


def _lora(trainer) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in trainer.denoiser.named_parameters() if "lora_" in name}


@pytest.mark.parametrize("family, policy", [("text-to-video-sd", DDIMPolicy), ("wan", FlowSDEPolicy)])
def test_recomputed_log_probs_equal_the_sampling_ones_before_any_update(tmp_path, family, policy):
    trainer = VideoDDPOTrainer(build_tiny_pipeline(family), _config(tmp_path, family, guidance_scale=2.0))
    assert isinstance(trainer.policy, policy)
    samples = trainer.sample()
    assert samples.latents.shape[:2] == (8, 4) and samples.log_probs.shape == (8, 3)
    assert samples.rewards.shape == (8,) and torch.isfinite(samples.log_probs).all()
    trainer.prepare_schedule()
    indices = torch.tensor([5, 0, 3])  # another batch composition than at sampling time
    with torch.no_grad():
        for step in range(samples.num_steps):
            recomputed = trainer.step_log_prob(samples, indices, step).log_prob
            ratio = ppo_clipped_loss(recomputed, samples.log_probs[indices, step], torch.ones(3), 0.2).ratio
            assert torch.allclose(ratio, torch.ones(3), atol=1e-4)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_one_ddpo_epoch_trains_every_supported_family(tmp_path, family, caplog):
    """CogVideoX ships a DDIM whose last step lands on alpha = 1 (no log-prob): the trainer fixes its own
    sampling scheduler, says so once, and every family samples, scores and updates its LoRA."""
    config = _config(tmp_path, family, num_inference_steps=2, sample_batch_size=2, sample_batches_per_epoch=1,
                     train_batch_size=2)
    with caplog.at_level(logging.WARNING, logger="integrations.finetune.ddpo"):
        trainer = VideoDDPOTrainer(build_tiny_pipeline(family), config)
    changed = [r.getMessage() for r in caplog.records if "changed the pipeline's scheduler" in r.getMessage()]
    if family == "cogvideox":
        assert len(changed) == 1 and "set_alpha_to_one: True -> False" in changed[0]
        assert type(trainer.pipe.scheduler).__name__ == "CogVideoXDDIMScheduler"  # keeps its SNR-shifted schedule
    else:
        assert not changed  # the tiny UNet pipelines ship a fitting DDIM; flow schedulers always fit
    before = _lora(trainer)
    metrics = trainer.train()[-1]
    assert all(torch.isfinite(torch.tensor(metrics[key])) for key in ("reward", "approx_kl", "loss", "grad_norm"))
    assert metrics["grad_norm"] > 0
    assert any(not torch.equal(before[k], v) for k, v in _lora(trainer).items())


@pytest.mark.parametrize("family", FLOW_FAMILIES)
def test_flow_sde_step_becomes_the_pipelines_own_step_as_its_noise_vanishes(family):
    """Mochi's release scheduler counts sigmas from clean to noise and its model predicts x0 - noise; the
    SDE policy reads both, so on every flow family its mean is the scheduler's own Euler step."""
    adapter = adapter_for(build_tiny_pipeline(family))
    size = {key: tiny_generation_kwargs(family)[key] for key in ("num_frames", "height", "width")}
    embeds = adapter.encode_prompt(["a cat"], do_classifier_free_guidance=False, max_sequence_length=16)
    policy = FlowSDEPolicy(noise_level=1e-6)
    timesteps = adapter.set_timesteps(4, **size)
    policy.prepare(adapter)
    latents = adapter.prepare_latents(1, **size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for index, timestep in enumerate(timesteps):
            output = adapter.denoiser_forward(latents, timestep, embeds)
            mean = policy.step(adapter, output, index, latents, generator=torch.Generator().manual_seed(1)).mean
            latents = adapter.scheduler_step(output, timestep, latents)
            torch.testing.assert_close(mean, latents, atol=1e-5, rtol=1e-5)


def test_flow_ddpo_epoch_with_kl_penalty_updates_lora_and_logs_statistics(tmp_path):
    trainer = VideoDDPOTrainer(build_tiny_pipeline("wan"), _config(tmp_path, "wan", kl_coef=0.1, inner_epochs=2))
    before = _lora(trainer)
    metrics = trainer.train()[-1]
    for key in ("reward", "reward_std", "advantage_abs_max", "approx_kl", "clip_fraction", "kl", "loss", "grad_norm"):
        assert torch.isfinite(torch.tensor(metrics[key])), key
    assert metrics["kl"] > 0  # the second inner epoch runs a policy that moved away from the base model
    assert any(not torch.equal(before[k], v) for k, v in _lora(trainer).items())


def test_async_and_inline_rewards_train_identically(tmp_path):
    results = []
    for async_reward in (True, False):
        config = _config(tmp_path, num_frames=2, async_reward=async_reward, output_dir=str(tmp_path / str(async_reward)))
        trainer = VideoDDPOTrainer(build_tiny_pipeline("text-to-video-sd"), config)
        trainer.train()
        results.append(_lora(trainer))
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])


def test_ddpo_resume_restores_the_stat_tracker_and_continues_exactly(tmp_path):
    straight = VideoDDPOTrainer(build_tiny_pipeline("text-to-video-sd"), _config(tmp_path, num_frames=2, max_steps=2, save_every=1))
    straight.train()
    resumed_config = _config(
        tmp_path, num_frames=2, max_steps=2, output_dir=str(tmp_path / "resumed"),
        resume_from=str(tmp_path / "run" / "checkpoints" / "step-000001"),
    )
    resumed = VideoDDPOTrainer(build_tiny_pipeline("text-to-video-sd"), resumed_config)
    assert resumed.step == 1 and sum(len(b) for b in resumed.stat_tracker.buffers.values()) == 8
    resumed.train()
    assert all(torch.equal(value, _lora(straight)[name]) for name, value in _lora(resumed).items())
    assert resumed.stat_tracker.state_dict() == straight.stat_tracker.state_dict()


def test_a_policy_without_a_step_fails_at_construction():
    class Incomplete(StochasticPolicy):
        pass

    with pytest.raises(TypeError, match=r"\bstep\b"):
        Incomplete()


def test_config_checks_batch_arithmetic(tmp_path):
    with pytest.raises(ValueError, match="multiple of samples_per_prompt"):
        _config(tmp_path, sample_batch_size=3)
    with pytest.raises(ValueError, match="divisible by train_batch_size x gradient_accumulation_steps"):
        _config(tmp_path, train_batch_size=3)


def test_group_advantages_with_shared_initial_noise(tmp_path):
    config = _config(tmp_path, num_frames=2, advantage_normalisation="group", shared_initial_noise=True)
    trainer = VideoDDPOTrainer(build_tiny_pipeline("text-to-video-sd"), config)
    samples = trainer.sample()
    assert samples.groups.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(samples.latents[0, 0], samples.latents[1, 0])  # one starting noise per group ...
    assert not torch.equal(samples.latents[0, -1], samples.latents[1, -1])  # ... then the sampler's own noise
    advantages = trainer.compute_advantages(samples)
    for group in range(4):
        members = advantages[samples.groups == group]
        assert torch.allclose(members.sum(), torch.tensor(0.0), atol=1e-5)
    with pytest.raises(ValueError, match="advantage_normalisation must be one of"):
        _config(tmp_path, advantage_normalisation="global")


@pytest.mark.slow
def test_ddpo_raises_colorfulness_on_held_out_seeds(tmp_path):
    """Policy gradients need many samples: 128 tiny one-frame videos per epoch in groups of 16 sharing
    their starting noise (group-normalised advantages), 8 epochs."""
    config = _config(
        tmp_path, num_frames=1, height=4, width=4, num_inference_steps=4, lora_rank=8, sample_batch_size=128,
        sample_batches_per_epoch=1, samples_per_prompt=16, train_batch_size=64, inner_epochs=2,
        advantage_normalisation="group", shared_initial_noise=True, max_steps=8, eval_every=8,
        eval_seeds=list(range(100, 132)), eval_prompts=["a red fox", "an owl"],
    )
    history = VideoDDPOTrainer(build_tiny_pipeline("text-to-video-sd"), config).train()
    before, after = history[0]["eval/reward"], history[-1]["eval/reward"]
    assert after > before + 1.5, (before, after)


#: DDPO has not been shown to raise a held-out reward on the tiny Mochi pipeline (trials with 4 or 8
#: steps, noise 0.5 to 0.7, 64 videos an epoch for 6 to 8 epochs gained -1.2 to +2.2; see README), so
#: the learning test covers the other flow families; Mochi's DDPO epoch and SDE step are tested above.
DDPO_LEARNING_FAMILIES = tuple(family for family in FLOW_FAMILIES if family != "mochi")


@pytest.mark.slow
@pytest.mark.parametrize("family", DDPO_LEARNING_FAMILIES)
def test_flow_ddpo_raises_colorfulness_on_held_out_seeds(tmp_path, family):
    """64 one-frame videos an epoch in groups of 8 sharing their starting noise, 8 epochs: held-out
    colorfulness (2 prompts x 8 seeds, sampled by the flow SDE) rises by more than 1 (gains 1.5 to 9.9
    over the tiny pipelines' seeds 0-2)."""
    config = _config(
        tmp_path, family, num_frames=1, num_inference_steps=4, lora_rank=8, sample_batch_size=64,
        sample_batches_per_epoch=1, samples_per_prompt=8, train_batch_size=32, inner_epochs=2,
        advantage_normalisation="group", shared_initial_noise=True, max_steps=8, eval_every=8,
        eval_seeds=list(range(100, 108)), eval_prompts=["a red fox", "an owl"],
    )
    history = VideoDDPOTrainer(build_tiny_pipeline(family), config).train()
    before, after = history[0]["eval/reward"], history[-1]["eval/reward"]
    assert after > before + 1.0, (before, after)
