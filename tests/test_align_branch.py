"""ST-Adapter and the alignment branch: golden parity, identity at init, gradients, checkpointing, freezing."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import reward
from reward.aigcvqa.alignment import ALIGNMENT_TINY, AlignmentBranch, AlignmentConfig, freeze_by_fix_rate
from reward.blocks.blip import BLIP_TINY, BlipSpec
from reward.imagereward.checkpoint import load_imagereward_weights, read_imagereward
from reward.imagereward.preprocess import CLIP_MEAN, CLIP_STD
from reward.blocks.st_adapter import STAdapter
from reward.imagereward.tokenizer import TINY_VOCAB_SIZE

PROMPTS = ["a red fox runs through fresh snow", "two cats"]


def _branch(**changes) -> AlignmentBranch:
    return AlignmentBranch(dataclasses.replace(ALIGNMENT_TINY, **{"num_frames": 2, **changes})).eval()


def _wake_adapter(branch: AlignmentBranch) -> None:
    """Move the adapter off its identity initialisation, as training would."""
    with torch.no_grad():
        for tensor in (branch.adapter.conv.weight, branch.adapter.conv.bias, branch.adapter.fc2.bias):
            tensor.normal_(0, 0.5)


def _pixel_grads(branch: AlignmentBranch, videos: torch.Tensor, compute_dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    videos = videos.clone().requires_grad_()
    ids, mask = branch.tokenize(PROMPTS[: len(videos)], videos.device)
    score = branch(videos, ids, mask, compute_dtype=compute_dtype)
    score.sum().backward()
    return score.detach(), videos.grad


def test_st_adapter_matches_reference_and_leaves_its_input_alone(golden_dir):
    golden = torch.load(golden_dir / "stadapter_small_golden.pt", weights_only=True)
    adapter = STAdapter(64, 16)
    adapter.load_state_dict(golden["state_dict"])
    x = golden["x"].clone()
    y = adapter(x, num_frames=golden["meta"]["T"])
    torch.testing.assert_close(y, golden["y"], atol=1e-4, rtol=1e-4)
    assert torch.equal(x, golden["x"]), "the adapter must not write into its input"
    zero_at_init = {name for name, is_zero in golden["init_is_zero"].items() if is_zero}
    fresh = STAdapter(64, 16).state_dict()
    assert {name for name, value in fresh.items() if not value.any()} == zero_at_init


@pytest.mark.parametrize("activation", [None, "gelu"])
def test_st_adapter_is_identity_at_init_and_can_learn(activation):
    adapter = STAdapter(32, 8, activation=activation)
    x = torch.randn(6, 1 + 4 * 4, 32)
    assert torch.equal(adapter(x, num_frames=3), x)
    (adapter(x, num_frames=3) ** 2).sum().backward()
    assert adapter.conv.weight.grad.abs().sum() > 0, "a zero-initialised adapter must still receive gradients"


def test_st_adapter_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown ST-Adapter activation 'relu'"):
        STAdapter(8, 4, activation="relu")
    with pytest.raises(ValueError, match="do not split into videos of 4 frames"):
        STAdapter(8, 4)(torch.zeros(6, 5, 8), num_frames=4)


def test_branch_at_identity_is_imagereward_on_the_reference(golden_dir):
    golden = torch.load(golden_dir / "imagereward_small_golden.pt", weights_only=True)
    vision = BlipSpec(vision_width=64, vision_depth=2, vision_heads=4, vision_mlp=256)
    checkpoint = golden_dir / "imagereward_small_ImageReward.pt"
    state, spec = read_imagereward(checkpoint, vision, golden_dir / "imagereward_small_med_config.json")
    vocab = str(golden_dir / "bert-base-uncased" / "vocab.txt")
    branch = AlignmentBranch(AlignmentConfig(blip=spec, num_frames=4, adapter_channels=16, tokenizer=vocab)).eval()
    load_imagereward_weights(branch, state, name=str(checkpoint))
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    frames = ((golden["pixel_values"] * std + mean) * 255).round() / 255
    static_videos = frames[:, None].expand(-1, 3, -1, -1, -1)
    ids, mask = branch.tokenize([golden["prompt"]] * 2, torch.device("cpu"))
    with torch.no_grad():
        score = branch(static_videos, ids, mask)
    assert (score - golden["rewards"][:, 0]).abs().max() <= 1e-5


def test_branch_matches_imagereward_reward_on_one_frame_and_averages_tokens_over_time():
    image_reward = reward.load("imagereward-tiny", pretrained=False)
    branch = _branch(num_frames=1)
    branch.blip.load_state_dict(image_reward.scorer.blip.state_dict())
    branch.mlp.load_state_dict(image_reward.scorer.mlp.state_dict())
    videos = torch.rand(2, 1, 3, 40, 56)
    ids, mask = branch.tokenize(PROMPTS, videos.device)
    with torch.no_grad():
        torch.testing.assert_close(branch(videos, ids, mask), image_reward(videos, PROMPTS).score, atol=1e-6, rtol=0)
        branch.config = dataclasses.replace(branch.config, num_frames=3)
        clip = torch.rand(1, 3, 3, 32, 32)
        per_frame = branch.encode_frames(clip[0], compute_dtype=None)
        torch.testing.assert_close(branch.video_tokens(clip), per_frame.mean(dim=0, keepdim=True))
        _wake_adapter(branch)
        reversed_order = branch.video_tokens(clip.flip(1))
        assert (branch.video_tokens(clip) - reversed_order).abs().max() > 1e-2, "a trained adapter sees frame order"


@pytest.mark.parametrize("compute_dtype", [None, torch.bfloat16])
def test_gradients_reach_pixels(compute_dtype):
    branch = _branch()
    _wake_adapter(branch)
    score, grad = _pixel_grads(branch, torch.rand(2, 6, 3, 48, 64), compute_dtype)
    assert score.dtype == torch.float32 and torch.isfinite(score).all()
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.dtype == torch.float32 for p in branch.mlp.parameters())


def test_gradient_checkpointing_gives_the_same_gradients():
    branch = _branch()
    _wake_adapter(branch)
    videos = torch.rand(2, 5, 3, 32, 32)
    plain_score, plain_grad = _pixel_grads(branch, videos)
    plain_param_grad = branch.blip.vision_layers[0].self_attn.qkv.weight.grad.clone()
    branch.zero_grad()
    branch.blip.gradient_checkpointing = branch.gradient_checkpointing = True
    calls = []
    branch.adapter.register_forward_pre_hook(lambda *_: calls.append(1))
    ckpt_score, ckpt_grad = _pixel_grads(branch, videos)
    assert len(calls) == 2, "the adapter is recomputed in backward"
    torch.testing.assert_close(ckpt_score, plain_score)
    torch.testing.assert_close(ckpt_grad, plain_grad)
    torch.testing.assert_close(branch.blip.vision_layers[0].self_attn.qkv.weight.grad, plain_param_grad)


@pytest.mark.parametrize("training", [False, True])
def test_reward_checkpointing_gives_the_same_gradients(training):
    model = reward.load("imagereward-tiny", pretrained=False).train(training)
    videos = torch.rand(1, 3, 3, 32, 48)

    calls = []
    model.scorer.blip.text_layers[1].register_forward_pre_hook(lambda *_: calls.append(1))

    def pixel_grad():
        calls.clear()
        torch.manual_seed(1)  # same dropout masks in both runs
        pixels = videos.clone().requires_grad_()
        model(pixels, "a dog").score.sum().backward()
        return pixels.grad

    plain = pixel_grad()
    assert len(calls) == 1
    model.set_gradient_checkpointing(True)
    torch.testing.assert_close(pixel_grad(), plain)
    assert len(calls) == 2, "the layer is recomputed in backward"


def _embedding_sizes(spec: BlipSpec) -> tuple[int, int]:
    patches = (spec.image_size // spec.patch_size) ** 2
    vision = spec.vision_width * (1 + 3 * spec.patch_size**2 + 1 + patches + 1)
    text = spec.text_width * (spec.vocab_size + spec.max_positions + 2)
    return vision, text


def _layer_sizes(spec: BlipSpec) -> tuple[int, int]:
    c, h = spec.vision_width, spec.text_width
    vision = (3 * c * c + 3 * c) + (c * c + c) + 2 * (2 * c) + (2 * c * spec.vision_mlp + spec.vision_mlp + c)
    self_attention = 3 * (h * h + h) + (h * h + h) + 2 * h
    cross_attention = (h * h + h) + 2 * (c * h + h) + (h * h + h) + 2 * h
    feed_forward = (2 * h * spec.text_intermediate + spec.text_intermediate + h) + 2 * h
    return vision, self_attention + cross_attention + feed_forward


def test_fix_rate_freezes_exactly_imagereward_counts():
    branch = _branch()
    spec = BLIP_TINY
    assert spec.vocab_size == TINY_VOCAB_SIZE
    vision_embed, text_embed = _embedding_sizes(spec)
    vision_layer, text_layer = _layer_sizes(spec)
    blip_total = vision_embed + 2 * vision_layer + 2 * spec.vision_width + text_embed + 2 * text_layer
    total = sum(p.numel() for p in branch.parameters())
    assert sum(p.numel() for p in branch.blip.parameters()) == blip_total

    assert freeze_by_fix_rate(branch, 0.0) == (total, total)
    # rate 0.5 on 2 layers: embeddings, layer 0, and the first parameter of layer 1 (LayerNorm1 weight / query weight)
    half = vision_embed + vision_layer + spec.vision_width + text_embed + text_layer + spec.text_width**2
    assert freeze_by_fix_rate(branch, 0.5) == (total - half, total)
    assert not branch.blip.vision_layers[1].layer_norm1.weight.requires_grad
    assert branch.blip.vision_layers[1].layer_norm1.bias.requires_grad
    assert freeze_by_fix_rate(branch, 1.0) == (total - blip_total, total)
    assert freeze_by_fix_rate(branch, 0.0) == (total, total), "a lower rate unfreezes again"
    with pytest.raises(ValueError, match="fix rate must be in"):
        freeze_by_fix_rate(branch, 1.5)


def test_tiny_reward_handles_odd_inputs_and_round_trips(tmp_path):
    model = reward.load("imagereward-tiny", pretrained=False, num_frames=2)
    videos = torch.rand(2, 5, 3, 20, 50)
    out = model(videos, ["a cat " * 40, "x"], return_frame_scores=True)
    assert out.score.shape == (2,) and out.extras["frame_scores"].shape == (2, 2)
    assert model(videos[:, :1], "one frame").score.shape == (2,)
    model.save_pretrained(tmp_path / "tiny")
    loaded = reward.load("imagereward-tiny", weights=tmp_path / "tiny")
    torch.testing.assert_close(loaded(videos, "a cat").score, model(videos, "a cat").score, atol=0, rtol=0)


def test_tiny_reward_gradients_in_bf16():
    model = reward.load("imagereward-tiny", pretrained=False, dtype="bf16")
    videos = torch.rand(1, 2, 3, 24, 24, requires_grad=True)
    score = model(videos, "a cat").score
    score.sum().backward()
    assert score.dtype == torch.float32 and torch.isfinite(videos.grad).all() and videos.grad.abs().sum() > 0


def test_branch_builds_from_a_saved_config_dict():
    saved = dataclasses.asdict(dataclasses.replace(ALIGNMENT_TINY, adapter_activation="gelu"))
    branch = AlignmentBranch(saved)
    assert branch.config.blip == BLIP_TINY and isinstance(branch.adapter.activation, torch.nn.GELU)
