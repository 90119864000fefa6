"""trl 0.23.1 integration: reward_fn contracts and trl's own DDPO / AlignProp trainers on a video pipeline."""
from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import pytest
import torch

import reward
from integrations.diffusers import build_tiny_pipeline
from integrations.trl import make_flow_grpo_reward_fn, make_prompt_fn, make_reward_fn, require_trl
from reward.simple import brightness, colorfulness

#: The reward trl's DDPOTrainer trains with here: AIGC-VQA's tiny preset (random weights).
TRL_REWARD = "aigc-vqa-tiny"
SIZE = dict(num_frames=2, height=16, width=16)
from tests.diffusers_support import one_thread  # noqa: F401  (autouse fixture)


def test_reward_fn_scores_images_and_videos_with_component_metadata():
    reward_fn = make_reward_fn("colorfulness:1.0,brightness:10")
    images = torch.rand(3, 3, 8, 8)
    rewards, metadata = reward_fn(images, ("a", "b", "c"), ({}, {}, {}))
    expected = colorfulness(images[:, None]) + 10 * brightness(images[:, None])
    assert torch.allclose(rewards, expected) and not rewards.requires_grad
    assert set(metadata) >= {"colorfulness", "brightness"} and metadata["brightness"].shape == (3,)
    videos = torch.rand(2, 4, 3, 8, 8)
    first_only = make_reward_fn("colorfulness", frames="first:1")(videos, ["a", "b"], None)[0]
    assert torch.allclose(first_only, colorfulness(videos[:, :1]))


def test_differentiable_reward_fn_passes_gradients_and_futures_mode_resolves():
    images = torch.rand(2, 3, 8, 8, requires_grad=True)
    rewards, _ = make_reward_fn("colorfulness", differentiable=True)(images, ["a", "b"], None)
    rewards.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    rewards, metadata = make_reward_fn("brightness", futures=True)(images.detach(), ["a", "b"], None)
    assert isinstance(rewards, Future) and torch.allclose(rewards.result(), brightness(images.detach()[:, None]))
    assert "brightness" in metadata.result()


def test_flow_grpo_reward_fn_returns_avg_and_members_from_uint8_channels_last_arrays():
    frames = (np.random.default_rng(0).random((2, 3, 8, 8, 3)) * 255).astype(np.uint8)
    scores, metadata = make_flow_grpo_reward_fn("colorfulness:0.5,brightness:1")(frames, ["a", "b"], [{}, {}], only_strict=True)
    videos = torch.from_numpy(frames).permute(0, 1, 4, 2, 3).float() / 255
    assert metadata == {} and isinstance(scores["avg"], np.ndarray)
    np.testing.assert_allclose(scores["avg"], (0.5 * colorfulness(videos) + brightness(videos)).numpy(), rtol=1e-5)
    np.testing.assert_allclose(scores["brightness"], brightness(videos).numpy(), rtol=1e-5)


def test_prompt_fn_is_seeded_and_trl_version_is_checked(monkeypatch):
    first, second = make_prompt_fn(["x", "y", "z"], seed=3), make_prompt_fn(["x", "y", "z"], seed=3)
    drawn = [first() for _ in range(6)]
    assert drawn == [second() for _ in range(6)] and {prompt for prompt, _ in drawn} <= {"x", "y", "z"}
    trl = pytest.importorskip("trl")
    assert require_trl() is trl
    monkeypatch.setattr(trl, "__version__", "0.24.0")
    with pytest.raises(ImportError, match=r"removed in trl 0\.24.*trl\[diffusers\]==0\.23\.1"):
        require_trl()


# -- trl's own trainers on a tiny TextToVideoSDPipeline ------------------------------------------------
def _pipeline(**kwargs):
    pytest.importorskip("trl")
    from integrations.trl import DDPOTextToVideoPipeline

    return DDPOTextToVideoPipeline(build_tiny_pipeline("text-to-video-sd", seed=0), **SIZE, **kwargs)


def _lora_state(pipe) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in pipe.unet.named_parameters() if "lora_" in name}


def test_wrapper_rejects_other_pipelines():
    pytest.importorskip("trl")
    from integrations.trl import DDPOTextToVideoPipeline

    with pytest.raises(TypeError, match="TextToVideoSDPipeline"):
        DDPOTextToVideoPipeline(build_tiny_pipeline("animatediff"))


def test_recomputed_log_probs_equal_sampling_ones_as_trl_computes_them():
    pipe = _pipeline()
    pipe.get_trainable_layers()
    prompt_ids = pipe.tokenizer(["a fox", "a cat"], return_tensors="pt", padding="max_length", max_length=pipe.tokenizer.model_max_length).input_ids
    embeds = pipe.text_encoder(prompt_ids)[0]
    negative = pipe.text_encoder(pipe.tokenizer([""] * 2, return_tensors="pt", padding="max_length", max_length=pipe.tokenizer.model_max_length).input_ids)[0]
    out = pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, num_inference_steps=3, guidance_scale=3.0, eta=1.0)
    assert out.images.shape == (2, 2, 3, 16, 16) and len(out.latents) == 4 and out.log_probs[0].shape == (2,)
    with torch.no_grad():
        for j, timestep in enumerate(pipe.scheduler.timesteps):
            latents, timesteps = out.latents[j], timestep.repeat(2)
            noise = pipe.unet(torch.cat([latents] * 2), torch.cat([timesteps] * 2), torch.cat([negative, embeds])).sample
            uncond, text = noise.chunk(2)
            again = pipe.scheduler_step(uncond + 3.0 * (text - uncond), timesteps, latents, eta=1.0, prev_sample=out.latents[j + 1])
            assert torch.allclose(again.log_probs, out.log_probs[j], atol=1e-5)


def test_trl_ddpo_trainer_runs_an_epoch_on_a_video_pipeline_and_checkpoints(tmp_path):
    from accelerate import PartialState
    from trl import DDPOConfig, DDPOTrainer

    PartialState()
    pipe = _pipeline()
    config = DDPOConfig(
        num_epochs=2, sample_num_steps=2, sample_batch_size=2, sample_num_batches_per_epoch=1, train_batch_size=1,
        mixed_precision="no", sample_guidance_scale=2.0, train_learning_rate=1e-2, per_prompt_stat_tracking=True,
        per_prompt_stat_tracking_buffer_size=4, per_prompt_stat_tracking_min_count=2, async_reward_computation=True,
        save_freq=1, project_kwargs={"project_dir": str(tmp_path), "automatic_checkpoint_naming": True},
    )
    scorer = reward.load(TRL_REWARD, pretrained=False)
    trainer = DDPOTrainer(config, make_reward_fn(scorer, futures=True), make_prompt_fn(["a red fox", "a cat"]), pipe)
    before = _lora_state(pipe)
    trainer.train()
    after = _lora_state(pipe)
    assert before and all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)
    checkpoint = tmp_path / "checkpoints" / "checkpoint_0"
    assert (checkpoint / "pytorch_lora_weights.safetensors").is_file()
    resumed_pipe = _pipeline()
    config.resume_from = str(checkpoint)
    DDPOTrainer(config, make_reward_fn(scorer, futures=True), make_prompt_fn(["a red fox"]), resumed_pipe)
    assert all(torch.equal(after[k], v) for k, v in _lora_state(resumed_pipe).items())


def test_trl_alignprop_trainer_updates_lora_through_the_differentiable_reward(tmp_path):
    from accelerate import PartialState
    from trl import AlignPropConfig, AlignPropTrainer

    PartialState()
    pipe = _pipeline()
    config = AlignPropConfig(
        num_epochs=1, sample_num_steps=3, train_batch_size=2, mixed_precision="no", sample_guidance_scale=1.0,
        train_learning_rate=1e-2, truncated_backprop_rand=False, truncated_backprop_timestep=1,
        project_kwargs={"project_dir": str(tmp_path), "automatic_checkpoint_naming": True},
    )
    trainer = AlignPropTrainer(config, make_reward_fn("colorfulness", differentiable=True), make_prompt_fn(["a cat"]), pipe)
    before = _lora_state(pipe)
    trainer.train()
    assert any(not torch.equal(before[k], v) for k, v in _lora_state(pipe).items())


def test_save_pretrained_writes_a_clean_base_plus_lora_that_reloads_to_the_same_unet(tmp_path):
    from diffusers import TextToVideoSDPipeline

    from integrations.finetune.lora import load_lora

    pipe = _pipeline()
    pipe.get_trainable_layers()
    for name, parameter in pipe.unet.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, 0.1)
    pipe.save_pretrained(tmp_path / "trained")
    reloaded = TextToVideoSDPipeline.from_pretrained(tmp_path / "trained")
    load_lora(reloaded, tmp_path / "trained")
    sample, embeds = torch.randn(1, 4, 2, 8, 8), torch.randn(1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(reloaded.unet(sample, 10, embeds).sample, pipe.unet(sample, 10, embeds).sample, atol=1e-6)
