"""Reward backprop trainer on tiny offline pipelines: learning (also on every flow-matching family), LoRA
round trips, exact resume, the guard."""
from __future__ import annotations

import warnings

import pytest
import torch

from integrations.diffusers import build_tiny_pipeline, tiny_generation_kwargs
from integrations.finetune.backprop import BackpropConfig, RewardBackpropTrainer
from integrations.finetune.guard import RewardHackingWarning
from integrations.finetune.lora import load_lora
from integrations.finetune.trainer import RewardFinetuner
from tests.diffusers_support import FLOW_FAMILIES, one_thread  # noqa: F401  (autouse fixture)


def _config(tmp_path, family: str = "text-to-video-sd", **overrides) -> BackpropConfig:
    size = tiny_generation_kwargs(family)
    size.setdefault("max_sequence_length", None)
    size.pop("prompt_template", None)  # HunyuanVideo's adapter uses the pipeline's default template
    settings = dict(
        prompts=["a cat", "a dog"], **size, num_inference_steps=3, guidance_scale=1.0, reward="colorfulness",
        lora_rank=4, learning_rate=5e-2, weight_decay=0.0, batch_size=2, truncation_steps=2, max_steps=2,
        eval_every=0, eval_seeds=[100, 101, 102, 103], output_dir=str(tmp_path / "run"), save_every=1000,
    )
    settings.update(overrides)
    return BackpropConfig(**settings)


def _lora(trainer) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in trainer.denoiser.named_parameters() if "lora_" in name}


def test_reward_backprop_raises_colorfulness_on_held_out_seeds(tmp_path):
    trainer = RewardBackpropTrainer(
        build_tiny_pipeline("text-to-video-sd"),
        _config(tmp_path, num_frames=2, max_steps=6, eval_every=6, eval_prompts=["a red fox", "an owl"]),
    )
    history = trainer.train()
    before, after = history[0]["eval/reward"], history[-1]["eval/reward"]
    assert after > before + 3.0, (before, after)
    assert all(torch.isfinite(torch.tensor(h["grad_norm"])) for h in history[1:])
    assert (tmp_path / "run" / "checkpoints" / "step-000006").is_dir()


@pytest.mark.parametrize("family", FLOW_FAMILIES)
def test_reward_backprop_raises_colorfulness_on_every_flow_matching_family(tmp_path, family):
    """One-frame videos, 8 samples a step, 8 steps: held-out colorfulness (2 prompts x 8 seeds) rises by
    more than 1 on every flow-matching family (gains 1.7 to 8.9 over the tiny pipelines' seeds 0-3)."""
    config = _config(
        tmp_path, family, num_frames=1, batch_size=8, max_steps=8, eval_every=8, eval_seeds=list(range(100, 108)),
        eval_prompts=["a red fox", "an owl"],
    )
    history = RewardBackpropTrainer(build_tiny_pipeline(family), config).train()
    before, after = history[0]["eval/reward"], history[-1]["eval/reward"]
    assert after > before + 1.0, (before, after)


def test_flow_family_with_random_truncation_checkpointing_and_a_frame_prefix(tmp_path):
    config = _config(
        tmp_path, "wan", num_inference_steps=4, random_truncation=(1, 3), gradient_checkpointing=True,
        reward_frames="first:3", max_steps=3,
    )
    trainer = RewardBackpropTrainer(build_tiny_pipeline("wan"), config)
    assert trainer.denoiser.is_gradient_checkpointing and not trainer.loop_checkpointing
    before = _lora(trainer)
    history = trainer.train()
    assert {h["truncation"] for h in history} <= {1.0, 2.0, 3.0}
    assert any(not torch.equal(before[k], v) for k, v in _lora(trainer).items())


@pytest.mark.parametrize("family", ["text-to-video-sd", "animatediff", "wan"])
def test_saved_lora_loads_into_a_fresh_pipeline_and_reproduces_its_videos(tmp_path, family):
    trainer = RewardBackpropTrainer(build_tiny_pipeline(family), _config(tmp_path, family, max_steps=1))
    trainer.train()
    trainer.save_lora(tmp_path / "lora")
    fresh = build_tiny_pipeline(family)
    if family == "text-to-video-sd":  # UNet3DConditionModel has no load_lora_adapter in diffusers
        load_lora(fresh, tmp_path / "lora")
    else:
        fresh.load_lora_weights(str(tmp_path / "lora"))
    kwargs = dict(tiny_generation_kwargs(family), num_inference_steps=2, output_type="pt")
    trained = trainer.pipe("a cat", generator=torch.Generator().manual_seed(3), **kwargs).frames
    reloaded = fresh("a cat", generator=torch.Generator().manual_seed(3), **kwargs).frames
    base = build_tiny_pipeline(family)("a cat", generator=torch.Generator().manual_seed(3), **kwargs).frames
    assert torch.allclose(trained, reloaded, atol=1e-5)
    assert not torch.allclose(trained, base, atol=1e-5)  # the LoRA changed the model


def test_resume_after_interruption_continues_exactly(tmp_path):
    straight = RewardBackpropTrainer(
        build_tiny_pipeline("text-to-video-sd"),
        _config(tmp_path, num_frames=2, max_steps=4, save_every=2, reward_frames="random:1", random_truncation=(1, 3)),
    )
    straight.train()
    interrupted = _config(
        tmp_path, num_frames=2, max_steps=4, save_every=2, reward_frames="random:1", random_truncation=(1, 3),
        output_dir=str(tmp_path / "resumed"), resume_from=str(tmp_path / "run" / "checkpoints" / "step-000002"),
    )
    resumed = RewardBackpropTrainer(build_tiny_pipeline("text-to-video-sd"), interrupted)
    assert resumed.step == 2
    resumed.train()
    assert all(torch.equal(value, _lora(straight)[name]) for name, value in _lora(resumed).items())
    assert [h["reward"] for h in resumed.history] == [h["reward"] for h in straight.history]
    latest = RewardBackpropTrainer(build_tiny_pipeline("text-to-video-sd"), _config(tmp_path, num_frames=2, resume_from="latest"))
    assert latest.step == 4


def test_guard_warns_when_a_hackable_reward_is_optimised(tmp_path):
    """Train on brightness while the watch reward penalises exposure ("brightness:-1"): every gain the
    training reward makes is, by construction, a loss for the watch reward (the shape of a reward hack).
    The control watches colorfulness, which rises with brightness on this model, and stays silent."""
    hacked = _config(tmp_path, num_frames=2, reward="brightness", watch_reward="brightness:-1",
                     learning_rate=1e-1, max_steps=4, eval_every=2)
    with pytest.warns(RewardHackingWarning, match="reward hacking"):
        history = RewardBackpropTrainer(build_tiny_pipeline("text-to-video-sd"), hacked).train()
    assert history[-1]["eval/diverged"] == 1.0 and history[-1]["eval/reward_gain"] > 0.5
    control = _config(tmp_path, num_frames=2, reward="brightness", watch_reward="colorfulness",
                      learning_rate=1e-1, max_steps=4, eval_every=2, output_dir=str(tmp_path / "control"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RewardHackingWarning)
        history = RewardBackpropTrainer(build_tiny_pipeline("text-to-video-sd"), control).train()
    assert history[-1]["eval/diverged"] == 0.0 and history[-1]["eval/watch_gain"] > 0


def test_a_finetuner_without_a_training_step_fails_at_construction(tmp_path):
    class Incomplete(RewardFinetuner):
        pass

    with pytest.raises(TypeError, match="training_step"):
        Incomplete(build_tiny_pipeline("text-to-video-sd"), _config(tmp_path))


def test_config_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"truncation_steps \(K\) must be in \[1, num_inference_steps=3\]"):
        _config(tmp_path, truncation_steps=5)
    with pytest.raises(ValueError, match="random_truncation"):
        _config(tmp_path, random_truncation=(0, 2))
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        RewardBackpropTrainer(build_tiny_pipeline("text-to-video-sd"), _config(tmp_path, resume_from=str(tmp_path)))
