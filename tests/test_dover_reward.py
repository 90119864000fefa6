"""The ``dover`` reward end to end: videos in [0, 1] -> views -> branches -> DOVER's fused score."""
from __future__ import annotations

import pytest
import torch

import reward
from reward.dover.model import DoverReward, dover_fusion
from reward.errors import WeightsNotFoundError

SCORE_TOL = 1e-5


@pytest.fixture(scope="module")
def golden(golden_dir):
    return torch.load(golden_dir / "dover_small_golden.pt", weights_only=True)


@pytest.fixture(scope="module")
def model(golden_dir):
    return reward.load("dover-tiny", weights=golden_dir / "dover_small_DOVER.pth")


@pytest.fixture(scope="module")
def golden_video(golden):
    """The reference's raw uint8 video [3, T, H, W] as a reward input [1, T, 3, H, W] in [0, 1]."""
    return (golden["raw_video_uint8"].permute(1, 0, 2, 3).float() / 255)[None]


def golden_views(golden) -> dict:
    return dict(
        technical_frame_indices=golden["frame_inds_technical"],
        aesthetic_frame_indices=golden["frame_inds_aesthetic"],
        fragment_offsets=(golden["frag_offsets_h"], golden["frag_offsets_w"]),
    )


@pytest.fixture(scope="module")
def golden_output(model, golden, golden_video):
    return model.score(golden_video, return_maps=True, **golden_views(golden))


@pytest.mark.golden
def test_reward_reproduces_reference_scores(golden_output, golden):
    fused = golden["fused"]
    assert golden_output.score.shape == (1,)
    assert abs(float(golden_output.score[0]) - fused["overall"]) <= SCORE_TOL
    assert abs(float(golden_output.components["technical"][0]) - fused["technical"]) <= SCORE_TOL
    assert abs(float(golden_output.components["aesthetic"][0]) - fused["aesthetic"]) <= SCORE_TOL
    assert abs(float(golden_output.extras["technical_raw"][0]) - golden["score_technical"]) <= SCORE_TOL
    assert abs(float(golden_output.extras["aesthetic_raw"][0]) - golden["score_aesthetic"]) <= SCORE_TOL


@pytest.mark.golden
def test_reward_score_maps_match_reference(golden_output, golden):
    maps = golden_output.extras
    assert maps["technical_map"].shape == (1, 1, 8, 7, 7)  # [B, clips, T', H', W']
    torch.testing.assert_close(maps["technical_map"], golden["score_map_technical"].reshape(1, 1, 8, 7, 7), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(maps["aesthetic_map"], golden["score_map_aesthetic"].reshape(1, 1, 8, 7, 7), atol=1e-4, rtol=1e-4)
    assert torch.equal(maps["technical_frame_indices"], golden["frame_inds_technical"])


@pytest.mark.golden
def test_fusion_matches_every_reference_field(golden):
    fused = dover_fusion(torch.tensor([golden["score_technical"]]), torch.tensor([golden["score_aesthetic"]]))
    for name, value in golden["fused"].items():
        assert abs(float(getattr(fused, name)[0]) - value) <= SCORE_TOL, name


@pytest.mark.golden
@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_every_component_has_finite_nonzero_pixel_gradients(model, golden, golden_video, dtype):
    videos = golden_video.clone().requires_grad_(True)
    model.set_compute_dtype(dtype)
    try:
        out = model(videos, **golden_views(golden))
    finally:
        model.set_compute_dtype(None)
    for name in ("technical", "aesthetic"):
        (grad,) = torch.autograd.grad(out.components[name].sum(), videos, retain_graph=True)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert out.score.dtype == torch.float32 and out.score.requires_grad
    assert abs(out.score.item() - golden["fused"]["overall"]) < (SCORE_TOL if dtype is None else 0.05)


def test_batch_of_short_small_videos_is_deterministic_and_round_trips(tmp_path):
    """Short (wrap-around) and small (upsampled) videos; default views are deterministic; native save/load."""
    model = reward.load("dover-tiny", pretrained=False, technical_clip_len=8, aesthetic_clip_len=8, aesthetic_t_frag=8)
    videos = torch.rand(2, 3, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    out = model.score(videos, return_maps=True)
    assert out.score.shape == (2,) and ((out.score > 0) & (out.score < 1)).all()
    assert not out.score.requires_grad
    assert out.extras["technical_map"].shape == (2, 1, 4, 7, 7)
    assert set(out.components) == {"technical", "aesthetic"}
    model.save_pretrained(tmp_path / "dover-tiny")
    again = reward.load("dover-tiny", weights=tmp_path / "dover-tiny")
    assert isinstance(again, DoverReward) and again.config.technical_clip_len == 8
    assert torch.equal(again.score(videos).score, out.score)


def test_set_gradient_checkpointing_reaches_both_backbones():
    model = reward.load("dover-tiny", pretrained=False).set_gradient_checkpointing(True)
    assert model.technical_backbone.gradient_checkpointing and model.aesthetic_backbone.gradient_checkpointing


def test_pretrained_without_weights_says_where_they_come_from(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match=r"huggingface\.co/teowu/DOVER"):
        reward.load("dover")
    with pytest.raises(WeightsNotFoundError, match="pretrained=False"):
        reward.load("dover-tiny")
    with pytest.raises(ValueError, match="contradicts pretrained=False"):
        reward.load("dover-tiny", weights="DOVER.pth", pretrained=False)


def test_presets_are_listed_with_their_components():
    assert {"dover", "dover-tiny"} <= set(reward.list_rewards())
    assert reward.reward_spec("dover").components == ("technical", "aesthetic")
