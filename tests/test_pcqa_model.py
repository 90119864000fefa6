"""PCQA as a reward: shapes and gradients (videos, images, fp32, bf16), views, presets, save/load, bad inputs."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import reward
from reward.errors import RewardInputError, WeightsNotFoundError
from reward.pcqa import PCQAReward
from reward.pcqa.presets import eva02_b_config, tiny_config
from reward.video.sampling import uniform_frame_indices
from reward.weights import offline

PROMPTS = ["a red fox running through fresh snow", "a paper boat on a river"]


def _tiny(**overrides) -> PCQAReward:
    return PCQAReward(tiny_config(**overrides))


@pytest.mark.parametrize("frames", [1, 6], ids=["image", "video"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_scores_and_pixel_gradients_for_videos_and_images(frames, dtype):
    model = _tiny().set_compute_dtype(dtype).train()
    videos = torch.rand(2, frames, 3, 40, 48, requires_grad=True)
    out = model(videos, PROMPTS)
    assert out.score.shape == (2,) and out.score.dtype == torch.float32
    assert torch.equal(out.components["quality"], out.score)
    out.score.sum().backward()
    assert torch.isfinite(videos.grad).all() and videos.grad.abs().sum() > 0
    temporal_grad = model.scorer.temporal[0].weight.grad
    assert (temporal_grad is None) == (frames == 1), "temporal convs run on videos and are skipped for images"


def test_backbone_runs_in_bf16_and_the_head_in_fp32():
    model = _tiny().set_compute_dtype("bf16")
    dtypes = {}

    def record(name):
        def hook(module, args, output):
            dtypes[name] = output.dtype

        return hook

    model.scorer.vision.model.stem.register_forward_hook(record("backbone"))
    model.scorer.head.register_forward_hook(record("head"))
    model(torch.rand(1, 2, 3, 32, 32), PROMPTS[:1])
    assert dtypes == {"backbone": torch.bfloat16, "head": torch.float32}


def test_transformer_backbone_and_concat_mixer():
    model = _tiny(backbone="test_vit", backbone_kwargs={"img_size": 64}, mixer="concat")
    videos = torch.rand(2, 3, 3, 50, 70, requires_grad=True)
    out = model(videos, PROMPTS)
    out.score.sum().backward()
    assert model.scorer.head[0].in_features == 2 * 32
    assert torch.isfinite(videos.grad).all() and videos.grad.abs().sum() > 0


def test_long_videos_are_sampled_uniformly_to_num_frames():
    model = _tiny(num_frames=4)
    videos = torch.rand(1, 20, 3, 32, 32)
    picked = videos[:, uniform_frame_indices(20, 4)]
    assert torch.equal(model.score(videos, PROMPTS[0]).score, model.score(picked, PROMPTS[0]).score)


def test_score_depends_on_the_prompt():
    model = _tiny()
    videos = torch.rand(1, 2, 3, 32, 32).expand(2, -1, -1, -1, -1)
    score = model.score(videos, PROMPTS).score
    assert score[0] != score[1]


def test_gradient_checkpointing_gives_the_same_gradients():
    model = _tiny().train()
    videos = torch.rand(2, 3, 3, 32, 32)
    grads = []
    for enabled in (False, True):
        model.set_gradient_checkpointing(enabled)
        assert model.scorer.vision.model.stages[0].grad_checkpointing is enabled
        pixels = videos.clone().requires_grad_(True)
        model(pixels, PROMPTS).score.sum().backward()
        grads.append(pixels.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_save_load_round_trip_is_exact(tmp_path):
    model = _tiny(mixer="concat")
    with torch.no_grad():
        for parameter in model.scorer.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    videos = torch.rand(2, 5, 3, 36, 36)
    expected = model.score(videos, PROMPTS).score
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architecture"] == "pcqa" and saved["config"]["pixel_mean"] == [0.5, 0.5, 0.5]
    assert saved["config"]["text_towers"][0]["text_cfg"]["width"] == 32
    for loaded in (reward.load("pcqa-tiny", weights=str(tmp_path)), PCQAReward.from_pretrained(tmp_path)):
        assert isinstance(loaded, PCQAReward) and loaded.config == model.config
        assert torch.equal(loaded.score(videos, PROMPTS).score, expected)


def test_learns_a_synthetic_prompt_conditioned_target():
    """Brightness is good for one prompt and bad for the other: only a prompt-aware model can fit it."""
    model = _tiny(resolution=32).train()
    level = torch.linspace(0.2, 0.8, 8)
    videos = (level.view(8, 1, 1, 1, 1) + 0.1 * torch.rand(8, 1, 3, 32, 32)).clamp(0, 1)
    prompts = ["a bright scene", "a dark scene"] * 4
    target = torch.tensor([1.0, -1.0] * 4) * (level - 0.5) * 4
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.mse_loss(model(videos, prompts).score, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_presets_are_listed_and_explain_where_weights_come_from():
    names = {"pcqa-convnext-s", "pcqa-efficientvit-l", "pcqa-eva02-b", "pcqa-ensemble", "pcqa-tiny"}
    assert names <= set(reward.list_rewards())
    for name in names - {"pcqa-tiny"}:
        with pytest.raises(WeightsNotFoundError, match="training_recipes.*pretrained='backbones'"):
            reward.load(name)
    with pytest.raises(WeightsNotFoundError, match="pretrained=False"):
        reward.load("pcqa-tiny")
    with pytest.raises(ValueError, match="pretrained must be"):
        reward.load("pcqa-convnext-s", pretrained="imagenet")
    assert eva02_b_config(resolution=448).backbone_kwargs == {"img_size": 448}
    assert reward.load("pcqa-tiny", pretrained=False, mixer="concat").config.mixer == "concat"


def test_training_start_loads_local_text_towers_and_backbone(tmp_path):
    source = _tiny()
    text_files = []
    for index, tower in enumerate(source.prompt_encoder.towers):
        state = {f"text.{k}": v for k, v in tower.state_dict().items()} | {"visual.proj": torch.zeros(2, 2)}
        save_file(state, str(tmp_path / f"tower{index}.safetensors"))
        text_files.append(str(tmp_path / f"tower{index}.safetensors"))
    backbone_file = tmp_path / "backbone.safetensors"
    save_file(source.scorer.vision.model.state_dict(), str(backbone_file))
    started = PCQAReward.from_backbones(tiny_config(), text_weights=text_files, backbone_weights=backbone_file)
    for name, value in source.state_dict().items():
        if name.startswith(("prompt_encoder.", "scorer.vision.")):
            assert torch.equal(started.state_dict()[name], value), name
    assert not torch.equal(started.scorer.head[0].weight, source.scorer.head[0].weight)


@pytest.mark.skipif(not offline(), reason="checks the offline error path; run with HF_HUB_OFFLINE=1")
def test_backbone_start_offline_fails_fast_with_the_fix():
    with pytest.raises(WeightsNotFoundError, match="local path"):
        reward.load("pcqa-convnext-s", pretrained="backbones")


@pytest.mark.parametrize(
    "videos, prompts, message",
    [
        (torch.rand(2, 3, 32, 32), PROMPTS, "images\\[:, None\\]"),
        (torch.rand(2, 1, 32, 32, 3), PROMPTS, "channels-last"),
        ((torch.rand(2, 1, 3, 32, 32) * 255).to(torch.uint8), PROMPTS, "videos.float\\(\\) / 255"),
        (torch.rand(2, 1, 3, 32, 32) * 255, PROMPTS, "0-255"),
        (torch.full((2, 1, 3, 32, 32), float("nan")), PROMPTS, "NaN"),
        (torch.rand(2, 1, 3, 32, 32), PROMPTS[:1], "got 1 prompts for 2 videos"),
        (torch.rand(2, 1, 3, 32, 32), [PROMPTS[0], ""], "prompt 1 is empty"),
        (torch.rand(2, 1, 3, 32, 32), None, "prompt-conditioned"),
    ],
)
def test_bad_inputs_name_the_fix(videos, prompts, message):
    with pytest.raises(RewardInputError, match=message):
        _tiny()(videos, prompts)
