"""ImageReward parity with the reference outputs in golden_small, through the loaders users call."""
from __future__ import annotations

import pytest
import torch

import reward
from reward.blocks.blip import BlipSpec
from reward.imagereward.checkpoint import load_imagereward_weights
from reward.imagereward.preprocess import CLIP_MEAN, CLIP_STD, imagereward_pixels
from reward.imagereward.tokenizer import ImageRewardTokenizer
from reward.errors import CheckpointError, WeightsNotFoundError

#: Vision sizes of the reduced reference model (its med_config.json gives the text sizes).
GOLDEN_VISION = {"vision_width": 64, "vision_depth": 2, "vision_heads": 4, "vision_mlp": 256}
CHECKPOINT = "imagereward_small_ImageReward.pt"


@pytest.fixture(scope="module")
def golden(golden_dir):
    return torch.load(golden_dir / "imagereward_small_golden.pt", weights_only=True)


@pytest.fixture(scope="module")
def model(golden_dir):
    return reward.load(
        "imagereward",
        weights=golden_dir / CHECKPOINT,
        med_config=golden_dir / "imagereward_small_med_config.json",
        blip=GOLDEN_VISION,
        tokenizer=str(golden_dir / "bert-base-uncased" / "vocab.txt"),
    )


def _frames_from_pixel_values(pixel_values: torch.Tensor) -> torch.Tensor:
    """Undo the CLIP normalisation back to the uint8 grid the reference started from: [N, 3, 224, 224] in [0, 1]."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return ((pixel_values * std + mean) * 255).round() / 255


def _image(tensor_hwc: torch.Tensor) -> torch.Tensor:
    return tensor_hwc.permute(2, 0, 1)[None].float() / 255


def test_tokens_match_exactly_and_keep_cls_first(model, golden):
    for prompt, ids, mask in [
        (golden["prompt"], golden["input_ids"], golden["attention_mask"]),
        (golden["long_prompt"], golden["long_input_ids"], golden["long_attention_mask"]),
    ]:
        got_ids, got_mask = model.scorer.tokenize([prompt], torch.device("cpu"))
        assert torch.equal(got_ids, ids) and torch.equal(got_mask, mask)
        assert got_ids[0, 0] == 101
    tokenizer = model.scorer.tokenizer
    assert tokenizer.vocab_size == 30524 and tokenizer.enc_token_id == 30523
    assert tokenizer.tokenizer.bos_token_id == 30522


def test_pixel_values_match_pillow_within_tolerance(golden):
    for image, expected in zip(golden["images_uint8_hwc"], golden["pixel_values"]):
        pixels = imagereward_pixels(_image(image))
        assert pixels.shape == (1, 3, 224, 224)
        torch.testing.assert_close(pixels[0], expected, atol=2e-2, rtol=0)


def test_pixel_values_are_exact_for_224_frames(golden):
    frames = _frames_from_pixel_values(golden["pixel_values"])
    torch.testing.assert_close(imagereward_pixels(frames), golden["pixel_values"], atol=1e-6, rtol=0)


def test_encoders_and_head_match_reference(model, golden):
    scorer = model.scorer
    ids = golden["input_ids"].expand(2, -1)
    mask = golden["attention_mask"].expand(2, -1)
    with torch.no_grad():
        image_embeds = scorer.blip.encode_image(golden["pixel_values"])
        text_hidden = scorer.blip.encode_text(ids, mask, image_embeds)
        features = scorer.blip.text_features(ids, mask, image_embeds)
        raw = scorer.mlp.raw(features)
        rewards = scorer.mlp(features)
    torch.testing.assert_close(image_embeds, golden["image_embeds"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(text_hidden, golden["text_hidden"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(features, golden["cls_feature"], atol=1e-4, rtol=1e-4)
    assert (raw - golden["mlp_raw"][:, 0]).abs().max() <= 1e-5
    assert (rewards - golden["rewards"][:, 0]).abs().max() <= 1e-5


def test_long_prompt_is_truncated_like_the_reference(model, golden):
    frames = _frames_from_pixel_values(golden["pixel_values"])[:, None]
    with torch.no_grad():
        got = model(frames, [golden["long_prompt"]] * 2).score
    assert (got - golden["rewards_long_prompt"][:, 0]).abs().max() <= 1e-5


def test_enc_token_first_reproduces_the_wrong_rewards_not_the_right_ones(model, golden):
    scorer = model.scorer
    ids = golden["input_ids"].expand(2, -1).clone()
    ids[:, 0] = scorer.tokenizer.enc_token_id
    with torch.no_grad():
        embeds = scorer.blip.encode_image(golden["pixel_values"])
        wrong = scorer.mlp(scorer.blip.text_features(ids, golden["attention_mask"].expand(2, -1), embeds))
    assert (wrong - golden["rewards_if_enc_token"][:, 0]).abs().max() <= 1e-5
    assert (wrong - golden["rewards"][:, 0]).abs().min() > 0.05


def test_reward_on_224_frames_is_the_public_score_and_videos_average_frames(model, golden):
    frames = _frames_from_pixel_values(golden["pixel_values"])
    expected = golden["rewards"][:, 0]
    with torch.no_grad():
        images = model(frames[:, None], golden["prompt"], return_frame_scores=True)
        video = model(torch.stack([frames[0], frames[1], frames[0]])[None], golden["prompt"])
    assert (images.score - expected).abs().max() <= 1e-5
    assert set(images.components) == {"imagereward"} and images.extras["frame_scores"].shape == (2, 1)
    assert abs(float(video.score) - float(2 * expected[0] + expected[1]) / 3) <= 1e-5


def test_reward_on_original_images_tracks_the_reference(model, golden):
    # Pillow rounds its bicubic output to uint8; the differentiable resize does not (measured: <= 1e-3).
    with torch.no_grad():
        for image, expected in zip(golden["images_uint8_hwc"], golden["rewards"][:, 0]):
            assert abs(float(model(_image(image)[None], golden["prompt"]).score) - float(expected)) < 5e-3


def test_prefixed_checkpoint_without_position_ids_loads_with_its_med_config(golden_dir, golden, tmp_path):
    state = torch.load(golden_dir / CHECKPOINT, weights_only=True)
    state = {f"module.{k}": v for k, v in state.items() if not k.endswith("position_ids")}
    torch.save(state, tmp_path / "ImageReward.pt")
    (tmp_path / "med_config.json").write_text((golden_dir / "imagereward_small_med_config.json").read_text())
    model = reward.load(
        "imagereward", weights=tmp_path / "ImageReward.pt", blip=GOLDEN_VISION,
        tokenizer=str(golden_dir / "bert-base-uncased" / "vocab.txt"),
    )
    assert model.config.blip.text_width == 64, "med_config.json beside the checkpoint sets the text sizes"
    with torch.no_grad():
        score = model(_frames_from_pixel_values(golden["pixel_values"])[:, None], golden["prompt"]).score
    assert (score - golden["rewards"][:, 0]).abs().max() <= 1e-5


def test_truncated_and_foreign_checkpoints_list_their_keys(golden_dir, tmp_path):
    small = reward.load("imagereward", pretrained=False, blip=GOLDEN_VISION, med_config=golden_dir / "imagereward_small_med_config.json")
    state = torch.load(golden_dir / CHECKPOINT, weights_only=True)
    state.pop("mlp.layers.7.bias")
    state.pop("blip.visual_encoder.blocks.1.attn.qkv.weight")
    with pytest.raises(CheckpointError) as info:
        load_imagereward_weights(small.scorer, state)
    assert "2 missing keys" in str(info.value)
    assert "blip.vision_model.encoder.layers.1.self_attn.qkv.weight" in str(info.value) and "mlp.layers.7.bias" in str(info.value)

    with pytest.raises(CheckpointError) as info:
        load_imagereward_weights(small.scorer, golden_dir / "dover_small_DOVER.pth")
    assert "unexpected keys: aesthetic_backbone" in str(info.value) and "missing keys: blip." in str(info.value)

    cut = tmp_path / "ImageReward.pt"
    cut.write_bytes((golden_dir / CHECKPOINT).read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="truncated"):
        reward.load("imagereward", weights=cut, blip=GOLDEN_VISION)


def test_other_sizes_name_the_mismatched_shapes(golden_dir):
    with pytest.raises(CheckpointError, match=r"keys with other shapes: .*mlp\.fc1\.weight \(checkpoint \(256, 64\) vs model \(128, 64\)\)"):
        reward.load(
            "imagereward", weights=golden_dir / CHECKPOINT, med_config=golden_dir / "imagereward_small_med_config.json",
            blip={**GOLDEN_VISION, "vision_mlp": 128},
        )


def test_missing_weights_and_vocabulary_say_where_they_come_from(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsNotFoundError, match=r"THUDM/ImageReward.*weights="):
        reward.load("imagereward")
    tiny = reward.load("imagereward-tiny", pretrained=False, tokenizer="bert-base-uncased")
    with pytest.raises(WeightsNotFoundError, match=r"bert-base-uncased.*tokenizer="):
        tiny(torch.rand(1, 1, 3, 32, 32), "a cat")
    with pytest.raises(WeightsNotFoundError, match="pretrained=False"):
        reward.load("imagereward-tiny")


def test_tokenizer_from_a_folder_refuses_a_mismatched_vocabulary(golden_dir):
    tokenizer = ImageRewardTokenizer.from_source(golden_dir / "bert-base-uncased")
    assert tokenizer.vocab_size == 30524
    tiny = reward.load("imagereward-tiny", pretrained=False)
    with pytest.raises(ValueError, match="30524 tokens but the text encoder embeds"):
        tiny.scorer.set_tokenizer(tokenizer)


def test_med_config_sets_text_sizes(golden_dir):
    spec = BlipSpec().with_med_config(golden_dir / "imagereward_small_med_config.json")
    assert (spec.text_width, spec.text_depth, spec.text_heads, spec.text_intermediate) == (64, 2, 4, 128)
    assert (spec.vision_width, spec.vocab_size) == (1024, 30524)


def test_official_sizes_avoid_the_three_transformers_traps():
    with torch.device("meta"):
        model = reward.load("imagereward", pretrained=False)
    blip = model.scorer.blip
    keys = model.scorer.state_dict()
    assert len(keys) == 625 - 5, "ImageReward.pt minus position_ids and the two unused projections"
    assert keys["blip.text_encoder.encoder.layer.11.crossattention.self.key.weight"].shape == (768, 1024)
    assert blip.vision_layers[0].layer_norm1.eps == blip.vision_model.post_layernorm.eps == 1e-6
    assert blip.text_layers[0].output.LayerNorm.eps == 1e-12
    assert keys["mlp.layers.0.weight"].shape == (1024, 768) and keys["mlp.layers.7.weight"].shape == (1, 16)
