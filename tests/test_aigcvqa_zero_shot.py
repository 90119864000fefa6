"""AIGC-VQA's zero-shot start (``aigc-reward convert``) against the golden references; native save/load, URL, errors."""
from __future__ import annotations

import json

import pytest
import torch

import reward
from reward.aigcvqa.model import AigcVqaReward
from reward.imagereward.preprocess import CLIP_MEAN, CLIP_STD
from reward.base import CONFIG_NAME
from reward.cli import main
from reward.errors import WeightsNotFoundError

SCORE_TOL = 1e-5


def _golden_files(golden_dir) -> dict[str, str]:
    return {
        "dover": str(golden_dir / "dover_small_DOVER.pth"),
        "imagereward": str(golden_dir / "imagereward_small_ImageReward.pt"),
        "med_config": str(golden_dir / "imagereward_small_med_config.json"),
        "tokenizer": str(golden_dir / "bert-base-uncased" / "vocab.txt"),
    }


@pytest.fixture(scope="module")
def converted(golden_dir, tmp_path_factory):
    """``aigc-reward convert`` on the reduced reference checkpoints -> a native folder."""
    files = _golden_files(golden_dir)
    out = tmp_path_factory.mktemp("converted") / "aigc-vqa-small"
    status = main([
        "convert", "--dover", files["dover"], "--imagereward", files["imagereward"], "--med-config", files["med_config"],
        "--sizes", "small", "--tokenizer", files["tokenizer"], "--out", str(out),
    ])
    assert status == 0
    return out


@pytest.fixture(scope="module")
def model(converted):
    return reward.load("aigc-vqa", weights=converted)


@pytest.mark.golden
def test_quality_components_are_doverss_raw_branch_scores(model, golden_dir):
    golden = torch.load(golden_dir / "dover_small_golden.pt", weights_only=True)
    video = (golden["raw_video_uint8"].permute(1, 0, 2, 3).float() / 255)[None]
    out = model.score(
        video,
        "a prompt",
        technical_frame_indices=golden["frame_inds_technical"],
        aesthetic_frame_indices=golden["frame_inds_aesthetic"],
        fragment_offsets=(golden["frag_offsets_h"], golden["frag_offsets_w"]),
    )
    assert abs(float(out.components["technical"][0]) - golden["score_technical"]) <= SCORE_TOL
    assert abs(float(out.components["aesthetic"][0]) - golden["score_aesthetic"]) <= SCORE_TOL


@pytest.mark.golden
def test_alignment_component_is_imagereward_on_a_still_frame(model, golden_dir):
    golden = torch.load(golden_dir / "imagereward_small_golden.pt", weights_only=True)
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    frames = ((golden["pixel_values"] * std + mean) * 255).round() / 255  # the reference's 224x224 uint8 images
    still_videos = frames[:, None].expand(-1, 4, -1, -1, -1)
    out = model.score(still_videos, golden["prompt"])
    assert (out.components["alignment"] - golden["rewards"][:, 0]).abs().max() <= SCORE_TOL
    torch.testing.assert_close(out.score, sum(out.components.values()), atol=0, rtol=0)


@pytest.mark.golden
def test_converted_folder_records_the_sizes_and_matches_the_weights_dict_route(converted, model, golden_dir):
    config = json.loads((converted / CONFIG_NAME).read_text())
    assert config["architecture"] == "aigc-vqa"
    assert config["config"]["quality"]["technical"]["embed_dim"] == 24
    assert config["config"]["alignment"]["blip"]["text_width"] == 64  # from the med_config
    files = _golden_files(golden_dir)
    tokenizer = files.pop("tokenizer")
    direct = reward.load("aigc-vqa", weights=files, sizes="small", alignment={"tokenizer": tokenizer})
    expected = model.state_dict()
    # the adapter's projections keep their random init: its zero conv and biases make it the identity
    loaded = {k: v for k, v in direct.state_dict().items() if not k.startswith(("alignment.adapter.fc1.weight", "alignment.adapter.fc2.weight"))}
    assert len(loaded) == len(expected) - 2 and all(torch.equal(value, expected[key]) for key, value in loaded.items())
    adapter = direct.alignment.adapter
    assert not any(t.any() for t in (adapter.conv.weight, adapter.conv.bias, adapter.fc1.bias, adapter.fc2.bias))


@pytest.mark.golden
def test_convert_refuses_a_wrong_checkpoint_with_the_keys(golden_dir, tmp_path, capsys):
    files = _golden_files(golden_dir)
    status = main(["convert", "--dover", files["imagereward"], "--imagereward", files["imagereward"], "--sizes", "small",
                   "--out", str(tmp_path / "out")])
    assert status == 2
    assert "missing keys: aesthetic_backbone" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_pretrained_without_weights_says_where_they_come_from(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="No AIGC-VQA weights are published.*weights=\\{'dover'"):
        reward.load("aigc-vqa")
    with pytest.raises(WeightsNotFoundError, match="aigc-vqa-tiny has no published weights"):
        reward.load("aigc-vqa-tiny")
    single = tmp_path / "DOVER.pth"
    single.write_bytes(b"x")
    with pytest.raises(WeightsNotFoundError, match="is a single file"):
        reward.load("aigc-vqa", weights=single)
    with pytest.raises(ValueError, match="unknown weights keys \\['dove'\\]"):
        reward.load("aigc-vqa", weights={"dove": "x"})
    with pytest.raises(ValueError, match="contradicts pretrained=False"):
        reward.load("aigc-vqa-tiny", weights={"dover": "x"}, pretrained=False)


def test_native_round_trip_is_exact_and_loads_from_a_url(tmp_path, http_server, monkeypatch):
    torch.manual_seed(3)
    tiny = reward.load("aigc-vqa-tiny", pretrained=False)
    with torch.no_grad():
        tiny.alignment.adapter.conv.weight.normal_()  # a trained adapter must survive the round trip too
    videos = torch.rand(1, 4, 3, 32, 48)
    expected = tiny.score(videos, "a fox")
    served, base = http_server
    tiny.save_pretrained(served / "tiny")
    local = reward.load("aigc-vqa-tiny", weights=served / "tiny")
    monkeypatch.setenv("AIGC_REWARD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    remote = reward.load("aigc-vqa-tiny", weights=f"{base}/tiny")
    assert isinstance(remote, AigcVqaReward) and not remote.training
    for loaded in (local, remote):
        assert loaded.state_dict().keys() == tiny.state_dict().keys()
        assert all(torch.equal(value, tiny.state_dict()[key]) for key, value in loaded.state_dict().items())
        got = loaded.score(videos, "a fox")
        assert torch.equal(got.score, expected.score)
        assert all(torch.equal(got.components[k], expected.components[k]) for k in expected.components)
    with pytest.raises(ValueError, match="cannot change a saved model"):
        reward.load("aigc-vqa-tiny", weights=f"{base}/tiny", sizes="paper")
