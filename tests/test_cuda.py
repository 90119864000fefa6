"""The rewards on a CUDA GPU (skipped without one; ``benchmarks/gpu_check.py`` runs them): golden parity in
fp32 with the CPU tolerances, bf16 against fp32, finite gradients, checkpointing, compiled backbones, and the
generator loop (best-of-N, one reward-backprop step, one DDPO epoch). Host-sync checks: test_host_sync.py."""
from __future__ import annotations

import os

import pytest
import torch

import reward
from integrations.diffusers import build_tiny_pipeline, tiny_generation_kwargs
from integrations.diffusers.best_of_n import best_of_n
from integrations.finetune.backprop import BackpropConfig, RewardBackpropTrainer
from integrations.finetune.ddpo import DDPOConfig, VideoDDPOTrainer
from reward.compile import COMPILED
from conftest import gpu_test_device
from test_align_imagereward import CHECKPOINT, GOLDEN_VISION, _frames_from_pixel_values
from test_dover_reward import SCORE_TOL, golden_views

pytestmark = pytest.mark.cuda
DEVICE = gpu_test_device()
PROMPTS = ["a red fox running in the snow", "a cat asleep on a sofa"]
TINY = ["aigc-vqa-tiny", "dover-tiny", "imagereward-tiny", "pcqa-tiny"]


@pytest.fixture
def ieee_fp32():
    """fp32 convolutions and matrix products without TF32 (cuDNN uses TF32 for convolutions by default).
    The tolerances below are the CPU tests' ones."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def dover_golden(golden_dir):
    golden = torch.load(golden_dir / "dover_small_golden.pt", weights_only=True)
    model = reward.load("dover-tiny", weights=golden_dir / "dover_small_DOVER.pth", device=DEVICE)
    video = (golden["raw_video_uint8"].permute(1, 0, 2, 3).float() / 255)[None].to(DEVICE)
    return model, golden, video


@pytest.fixture(scope="module")
def imagereward_golden(golden_dir):
    golden = torch.load(golden_dir / "imagereward_small_golden.pt", weights_only=True)
    model = reward.load(
        "imagereward", weights=golden_dir / CHECKPOINT, med_config=golden_dir / "imagereward_small_med_config.json",
        blip=GOLDEN_VISION, tokenizer=str(golden_dir / "bert-base-uncased" / "vocab.txt"), device=DEVICE,
    )
    return model, golden


def _tiny(name: str, **overrides) -> reward.VideoReward:
    torch.manual_seed(0)
    return reward.load(name, pretrained=False, device=DEVICE, **overrides)


def _videos(batch: int = 2, frames: int = 8, size: int = 48) -> torch.Tensor:
    return torch.rand(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(batch)).to(DEVICE)


def _score_and_grad(model, videos, prompts=PROMPTS, **kwargs):
    pixels = videos.clone().requires_grad_(True)
    score = model(pixels, None if prompts is None else prompts[: len(videos)], **kwargs).score
    score.sum().backward()
    return score.detach(), pixels.grad


@pytest.mark.golden
def test_dover_fp32_matches_the_reference_on_cuda(dover_golden, ieee_fp32):
    model, golden, video = dover_golden
    out = model.score(video, return_maps=True, **golden_views(golden))
    fused = golden["fused"]
    for value, expected in [
        (out.score, fused["overall"]), (out.components["technical"], fused["technical"]),
        (out.components["aesthetic"], fused["aesthetic"]), (out.extras["technical_raw"], golden["score_technical"]),
        (out.extras["aesthetic_raw"], golden["score_aesthetic"]),
    ]:
        assert abs(float(value[0]) - expected) <= SCORE_TOL
    torch.testing.assert_close(out.extras["technical_map"].cpu(), golden["score_map_technical"].reshape(1, 1, 8, 7, 7), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.extras["aesthetic_map"].cpu(), golden["score_map_aesthetic"].reshape(1, 1, 8, 7, 7), atol=1e-4, rtol=1e-4)


@pytest.mark.golden
def test_imagereward_fp32_matches_the_reference_on_cuda(imagereward_golden, ieee_fp32):
    model, golden = imagereward_golden
    frames = _frames_from_pixel_values(golden["pixel_values"]).to(DEVICE)
    with torch.no_grad():
        scorer = model.scorer
        ids, mask = golden["input_ids"].expand(2, -1).to(DEVICE), golden["attention_mask"].expand(2, -1).to(DEVICE)
        image_embeds = scorer.blip.encode_image(golden["pixel_values"].to(DEVICE))
        features = scorer.blip.text_features(ids, mask, image_embeds)
        images = model(frames[:, None], golden["prompt"])
    torch.testing.assert_close(image_embeds.cpu(), golden["image_embeds"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(features.cpu(), golden["cls_feature"], atol=1e-4, rtol=1e-4)
    assert (images.score.cpu() - golden["rewards"][:, 0]).abs().max() <= 1e-5


@pytest.mark.golden
def test_bf16_stays_near_fp32_with_finite_gradients(dover_golden, imagereward_golden):
    model, golden, video = dover_golden
    for dtype in (None, torch.bfloat16):
        model.set_compute_dtype(dtype)
        try:
            score, grad = _score_and_grad(model, video, None, **golden_views(golden))
        finally:
            model.set_compute_dtype(None)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
        assert abs(float(score[0]) - golden["fused"]["overall"]) < (1e-4 if dtype is None else 0.05)
    model, golden = imagereward_golden
    frames = _frames_from_pixel_values(golden["pixel_values"]).to(DEVICE)[:, None]
    model.set_compute_dtype("bf16")
    try:
        score, grad = _score_and_grad(model, frames, [golden["prompt"]] * 2)
    finally:
        model.set_compute_dtype(None)
    assert torch.isfinite(grad).all() and (score.cpu() - golden["rewards"][:, 0]).abs().max() < 0.05


@pytest.mark.parametrize("name", TINY)
def test_every_component_has_finite_gradients_in_both_precisions(name):
    model = _tiny(name)
    for dtype in (None, torch.bfloat16):
        model.set_compute_dtype(dtype)
        pixels = _videos().requires_grad_(True)
        out = model(pixels, PROMPTS)
        for component, value in out.components.items():
            (grad,) = torch.autograd.grad(value.sum(), pixels, retain_graph=True)
            assert torch.isfinite(grad).all() and grad.abs().sum() > 0, (name, dtype, component)


@pytest.mark.parametrize("name", TINY)
def test_checkpointing_gives_the_same_scores_and_gradients(name, ieee_fp32):
    model = _tiny(name)
    videos = _videos()
    score, grad = _score_and_grad(model, videos)
    model.set_gradient_checkpointing(True)
    again, grad_again = _score_and_grad(model, videos)
    torch.testing.assert_close(again, score, atol=1e-6, rtol=0)
    torch.testing.assert_close(grad_again, grad, atol=1e-6, rtol=1e-5)


def test_tiny_best_of_n_on_cuda():
    pipe = build_tiny_pipeline("text-to-video-sd").to(DEVICE)
    scorer = _tiny("aigc-vqa-tiny")
    result = best_of_n(pipe, PROMPTS, scorer, n=2, batch_size=2, seed=3, progress=False, **tiny_generation_kwargs("text-to-video-sd"))
    assert len(result.candidates) == 4 and all(torch.isfinite(torch.tensor(c.score)) for c in result.candidates)
    best = result.for_prompt(0)[0]
    rescored = scorer.score(best.video[None].to(DEVICE), best.prompt).score
    assert abs(float(rescored) - best.score) < 1e-4  # alone vs in a batch of two: cuDNN may pick other kernels


def _finetune_settings(tmp_path, family: str = "text-to-video-sd") -> dict:
    size = tiny_generation_kwargs(family)
    size.setdefault("max_sequence_length", None)
    return dict(
        prompts=PROMPTS, **size, num_inference_steps=3, guidance_scale=1.0, reward="aigc-vqa-tiny", lora_rank=4,
        learning_rate=1e-2, max_steps=1, eval_every=0, output_dir=str(tmp_path / "run"), save_every=1000,
    )


def _lora(trainer) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in trainer.denoiser.named_parameters() if "lora_" in name}


def test_one_reward_backprop_step_on_cuda(tmp_path):
    config = BackpropConfig(**_finetune_settings(tmp_path), batch_size=2, truncation_steps=2)
    trainer = RewardBackpropTrainer(build_tiny_pipeline("text-to-video-sd"), config, reward=_tiny("aigc-vqa-tiny"))
    assert trainer.accelerator.device.type == DEVICE.type
    before = _lora(trainer)
    record = trainer.train()[-1]
    assert torch.isfinite(torch.tensor(record["grad_norm"])) and record["grad_norm"] > 0
    assert any(not torch.equal(before[k], v) for k, v in _lora(trainer).items())


def test_one_ddpo_epoch_on_cuda(tmp_path):
    config = DDPOConfig(
        **_finetune_settings(tmp_path), sample_batch_size=4, sample_batches_per_epoch=1, samples_per_prompt=2,
        train_batch_size=4, clip_range=0.2, stat_min_count=2,
    )
    trainer = VideoDDPOTrainer(build_tiny_pipeline("text-to-video-sd"), config, reward=_tiny("aigc-vqa-tiny"))
    before = _lora(trainer)
    metrics = trainer.train()[-1]
    for key in ("reward", "loss", "grad_norm"):
        assert torch.isfinite(torch.tensor(metrics[key])), key
    assert any(not torch.equal(before[k], v) for k, v in _lora(trainer).items())


@pytest.mark.parametrize("name", ["aigc-vqa-tiny", "pcqa-tiny"])
def test_compiled_backbones_match_eager_on_cuda(name, ieee_fp32):
    """Inductor (Triton) kernels: scores within 1e-5, gradients within 1e-4 (recompiles: tests/test_compile.py)."""
    model = _tiny(name)
    videos = _videos()
    score, grad = _score_and_grad(model, videos)
    model.compile(backend=os.environ.get("AIGC_REWARD_TEST_COMPILE_BACKEND", "inductor"))
    compiled_score, compiled_grad = _score_and_grad(model, videos)
    assert set(model.compile_status.values()) == {COMPILED}, model.compile_status
    torch.testing.assert_close(compiled_score, score, atol=1e-5, rtol=0)
    torch.testing.assert_close(compiled_grad, grad, atol=1e-4, rtol=0)


def test_convnext_depthwise_conv_gets_a_contiguous_input_on_cuda():
    """ConvNeXt-3D's residual leaves channels-last-3d activations; cuDNN's depthwise Conv3d is slow on them, so on
    CUDA the block hands it a contiguous copy (benchmarks/RESULTS.md, "GPU check"), with the same result."""
    from reward.blocks.convnext3d import ConvNeXtBlock3D

    block = ConvNeXtBlock3D(16, temporal_kernel=3, drop_path=0.0).to(DEVICE)
    x = torch.randn(1, 16, 4, 8, 8, device=DEVICE).to(memory_format=torch.channels_last_3d)
    seen = []
    block.dwconv.register_forward_pre_hook(lambda module, args: seen.append(args[0].is_contiguous()))
    out = block(x)
    assert seen == [DEVICE.type == "cuda" or x.is_contiguous()]
    expected = block.dwconv._conv_forward(x.contiguous(), block.dwconv.weight, block.dwconv.bias)
    torch.testing.assert_close(block.depthwise(x), expected)
    assert out.shape == x.shape
