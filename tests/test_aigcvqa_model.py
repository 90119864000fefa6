"""The ``aigc-vqa`` reward on its tiny preset: components, gradients (fp32, bf16), checkpointing, maps, bad inputs."""
from __future__ import annotations

import pytest
import torch

import reward
from reward.aigcvqa.model import BRANCHES, AigcVqaReward, aigc_vqa_config
from reward.errors import RewardInputError, VideoReadError
from reward.explain import explain_video
from reward.video.io import read_video, write_video

PROMPTS = ["a red fox runs through fresh snow", "two cats"]
COMPONENTS = ("technical", "aesthetic", "alignment")


@pytest.fixture(scope="module")
def model() -> AigcVqaReward:
    torch.manual_seed(0)
    model = reward.load("aigc-vqa-tiny", pretrained=False)
    with torch.no_grad():  # wake the ST-Adapter up from identity, as training would, so it is on the gradient path
        model.alignment.adapter.conv.weight.normal_(0, 0.5)
    return model


def _videos(batch=2, frames=5, height=64, width=80, seed=0) -> torch.Tensor:
    return torch.rand(batch, frames, 3, height, width, generator=torch.Generator().manual_seed(seed))


def _pixel_grads(model, videos, prompts, **kwargs) -> tuple[reward.RewardOutput, dict[str, torch.Tensor]]:
    videos = videos.clone().requires_grad_(True)
    out = model(videos, prompts, **kwargs)
    grads = {}
    for name in COMPONENTS:
        (grads[name],) = torch.autograd.grad(out.components[name].sum(), videos, retain_graph=True)
    return out, grads


def test_score_is_the_sum_of_three_components_and_score_needs_no_grad(model):
    out = model.score(_videos(), PROMPTS)
    assert out.score.shape == (2,) and set(out.components) == set(COMPONENTS)
    assert all(out.components[name].shape == (2,) for name in COMPONENTS)
    torch.testing.assert_close(out.score, sum(out.components[name] for name in COMPONENTS), atol=0, rtol=0)
    assert not out.score.requires_grad and not model.training


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_every_component_has_finite_nonzero_pixel_gradients(model, dtype):
    model.set_compute_dtype(dtype)
    try:
        out, grads = _pixel_grads(model, _videos(batch=1), PROMPTS[:1])
    finally:
        model.set_compute_dtype(None)
    assert out.score.dtype == torch.float32 and out.score.requires_grad
    for name, grad in grads.items():
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    if dtype is not None:
        reference = model.score(_videos(batch=1), PROMPTS[:1])
        torch.testing.assert_close(out.score.detach(), reference.score, atol=0.05, rtol=0)


def _count_calls(modules) -> list[int]:
    """Count calls with pre-hooks: checkpoint's recomputation stops early, so post-hooks may not run in it."""
    counter = [0]
    for module in modules:
        module.register_forward_pre_hook(lambda *_: counter.__setitem__(0, counter[0] + 1))
    return counter


def test_checkpointing_recomputes_every_branch_and_gives_the_same_gradients():
    torch.manual_seed(1)
    model = reward.load("aigc-vqa-tiny", pretrained=False)
    videos = _videos(batch=1, seed=2)
    plain, plain_grads = _pixel_grads(model, videos, PROMPTS[:1])
    watched = [model.technical_backbone.layers[0].blocks[0], model.aesthetic_backbone.stages[0][0], model.alignment.blip.vision_layers[0]]
    calls = _count_calls(watched)
    model.set_gradient_checkpointing(True)
    checkpointed, grads = _pixel_grads(model, videos, PROMPTS[:1])
    assert calls[0] == 2 * len(watched), "each watched layer runs once forward and once more in backward"
    assert torch.equal(plain.score, checkpointed.score)
    for name in COMPONENTS:
        torch.testing.assert_close(grads[name], plain_grads[name], atol=1e-7, rtol=1e-5)


def test_branch_parameters_partition_the_model(model):
    groups = {name: model.branch_parameters(name) for name in BRANCHES}
    ids = [id(p) for params in groups.values() for p in params]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert model.branch_parameters("alignment.adapter") == list(model.alignment.adapter.parameters())
    assert len(model.branch_parameters("technical", "technical")) == len(groups["technical"])
    with pytest.raises(ValueError, match="unknown branch 'temporal'"):
        model.branch_parameters("temporal")


def test_return_maps_gives_what_explain_draws(model, tmp_path):
    video = _videos(batch=1, frames=6)[0]
    out = model.score(video[None], PROMPTS[:1], return_maps=True)
    extras = out.extras
    # tiny views: 4x4 fragments of 8 px share one cell of the 32-px output stride, aesthetic 32x32 -> 1x1
    assert extras["technical_map"].shape == (1, 1, 2, 4, 4) and extras["aesthetic_map"].shape == (1, 1, 2, 1, 1)
    assert extras["fragment_boxes"].shape == (1, 4, 4, 1, 4)
    torch.testing.assert_close(extras["technical_map"].mean(dim=(1, 2, 3, 4)), out.components["technical"])
    assert extras["alignment_frame_indices"].tolist() == [0, 2, 3, 5]  # 4 of 6 frames, evenly spread
    result = explain_video(model, video, PROMPTS[0], tmp_path, reward_name="aigc-vqa-tiny")
    assert result.png.is_file() and result.maps.technical is not None and result.maps.aesthetic is not None
    assert set(result.scores) == {"score", *COMPONENTS}


def test_config_sizes_and_overrides():
    config = aigc_vqa_config()
    assert (config.quality.technical_clip_len, config.quality.technical_num_clips, config.quality.technical_aligned) == (16, 1, 16)
    assert (config.quality.aesthetic_clip_len, config.alignment.num_frames, config.alignment.adapter_channels) == (16, 16, 384)
    assert config.quality.technical.embed_dim == 96 and config.alignment.blip.vision_width == 1024
    changed = aigc_vqa_config("tiny", quality={"technical": {"drop_path_rate": 0.0}}, alignment={"num_frames": 2})
    assert changed.quality.technical.drop_path_rate == 0.0 and changed.quality.technical.embed_dim == 8
    assert changed.alignment.num_frames == 2 and changed.alignment.blip == aigc_vqa_config("tiny").alignment.blip
    with pytest.raises(ValueError, match="unknown AIGC-VQA sizes 'huge'"):
        aigc_vqa_config("huge")
    with pytest.raises(ValueError, match=r"unknown DoverConfig fields \['frames'\]"):
        aigc_vqa_config(quality={"frames": 8})


# -- bad inputs at the reward level ------------------------------------------------------------------
@pytest.mark.parametrize(
    "videos, prompts, message",
    [
        (torch.rand(5, 3, 32, 32), "p", "5-D"),
        (torch.rand(1, 5, 32, 32, 3), "p", "channels-last"),
        (torch.randint(0, 255, (1, 5, 3, 32, 32), dtype=torch.uint8), "p", r"videos.float\(\) / 255"),
        (torch.rand(1, 5, 3, 32, 32) * 255, "p", "videos / 255"),
        (torch.full((1, 5, 3, 32, 32), float("nan")), "p", "NaN or Inf"),
        (torch.full((1, 5, 3, 32, 32), float("inf")), "p", "NaN or Inf"),
        (torch.rand(2, 5, 3, 32, 32), ["only one"], "got 1 prompts for 2 videos"),
        (torch.rand(1, 5, 3, 32, 32), [" "], "prompt 0 is empty"),
        (torch.rand(1, 5, 3, 32, 32), None, "prompt-conditioned"),
    ],
    ids=["rank", "channels-last", "uint8", "0-255", "nan", "inf", "prompt-count", "empty-prompt", "no-prompt"],
)
def test_bad_inputs_name_the_fix(model, videos, prompts, message):
    with pytest.raises(RewardInputError, match=message):
        model.score(videos, prompts)


def test_one_frame_scores_an_image_as_a_still_video(model):
    image = _videos(batch=1, frames=1)
    still = image.expand(-1, 3, -1, -1, -1)
    torch.testing.assert_close(model.score(image, "a fox").score, model.score(still, "a fox").score, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [(16, 24), (48, 96)], ids=["smaller-than-a-fragment", "non-square"])
def test_small_and_non_square_frames_are_upsampled_and_differentiable(model, size):
    videos = _videos(batch=1, frames=3, height=size[0], width=size[1]).requires_grad_(True)
    out = model(videos, "a fox")
    out.score.sum().backward()
    assert torch.isfinite(out.score).all()
    assert torch.isfinite(videos.grad).all() and videos.grad.abs().sum() > 0


def test_long_prompts_are_truncated_to_the_text_context(model):
    videos = _videos(batch=1)
    long_prompt = "a fox running through deep snow at dawn " * 4
    assert len(model.alignment.tokenize([long_prompt], videos.device)[1][0]) == 35
    torch.testing.assert_close(
        model.score(videos, long_prompt).score, model.score(videos, long_prompt + "and then a dragon").score, atol=0, rtol=0
    )


def test_video_files_score_and_unreadable_or_empty_ones_fail_clearly(model, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", _videos(batch=1, frames=4)[0])
    out = model.score(read_video(clip)[None], "a fox")
    assert torch.isfinite(out.score).all()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 50)
    (tmp_path / "no_frames").mkdir()
    for path, message in [(corrupt, "could not read video"), (tmp_path / "no_frames", "no png/jpg frames")]:
        with pytest.raises(VideoReadError, match=message):
            read_video(path)


# -- CPU fast paths of the quality backbones -----------------------------------------------------------
def test_swin_attention_mask_equals_the_grpb_formula_with_its_gradients():
    from reward.blocks.swin3d import WindowAttention3D, WindowLayout, fragment_gate, shift_mask

    torch.manual_seed(0)
    attention = WindowAttention3D(dim=8, num_heads=2, window=(2, 7, 7), fragment_bias=True)
    layout = WindowLayout.build((2, 14, 14), (2, 7, 7), (1, 3, 3), True, torch.device("cpu"))
    geometry = ((2, 14, 14), (2, 7, 7), (0, 3, 3), torch.device("cpu"), torch.float32)  # D fits the window: no D shift
    index = attention.relative_position_index.reshape(-1)
    rpb, fpb = (t[index].view(98, 98, 2).permute(2, 0, 1) for t in (attention.relative_position_bias_table, attention.fragment_position_bias_table))
    gate = fragment_gate(*geometry)[:, None]
    expected = rpb * gate + fpb * (1 - gate) + shift_mask(*geometry)[:, None]
    weights = torch.randn_like(expected)
    expected_grads = torch.autograd.grad((expected * weights).sum(), attention.parameters(), allow_unused=True)
    got = attention.attention_mask(layout, 98)
    assert got.is_contiguous()  # else the fused kernel copies it
    grads = torch.autograd.grad((got * weights).sum(), attention.parameters(), allow_unused=True)
    torch.testing.assert_close(got, expected)
    for grad, expected_grad in zip(grads, expected_grads):
        assert (grad is None) == (expected_grad is None)
        if grad is not None:
            torch.testing.assert_close(grad, expected_grad)


def test_convnext_depthwise_conv_stays_fp32_under_cpu_autocast():
    from reward.blocks.convnext3d import ConvNeXtBlock3D

    block = ConvNeXtBlock3D(dim=8, temporal_kernel=3, drop_path=0.0)
    x = torch.randn(1, 8, 4, 14, 14)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = block.depthwise(x)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, block.dwconv(x), atol=0, rtol=0)
