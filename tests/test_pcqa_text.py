"""PCQA's hybrid prompt encoder: text towers only, frozen, cached per prompt, loadable from open_clip checkpoints."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import save_file

import reward
from reward.errors import WeightsNotFoundError
from reward.pcqa import HybridPromptEncoder, PromptEmbeddingCache, TextTowerConfig, load_text_weights
from reward.pcqa.config import default_text_towers
from reward.pcqa.presets import tiny_config, tiny_text_towers
from reward.pcqa.text import build_text_tower, resolve_text_checkpoint


def _count_encoded(encoder: HybridPromptEncoder) -> list[int]:
    """Record the batch size of every call into the first text tower."""
    seen: list[int] = []
    encoder.towers[0].register_forward_hook(lambda module, args, output: seen.append(args[0].shape[0]))
    return seen


def test_paper_towers_resolve_from_open_clip_configs_without_a_vision_tower():
    h14, eva = (tower.resolve() for tower in default_text_towers())
    assert (h14.model_name, h14.pretrained, h14.embed_dim, h14.quick_gelu) == ("ViT-H-14-quickgelu", "dfn5b", 1024, True)
    assert (h14.text_cfg["width"], h14.text_cfg["layers"]) == (1024, 24)
    assert (eva.model_name, eva.embed_dim, eva.quick_gelu, eva.text_cfg["width"]) == ("EVA02-L-14", 768, False, 768)
    encoder = HybridPromptEncoder(tiny_text_towers())
    assert encoder.embed_dim == 32 + 16
    assert not any(key.startswith("visual") or ".visual." in key for key in encoder.state_dict())
    assert encoder(["a red fox in snow"]).shape == (1, 48)


def test_towers_are_frozen_stay_in_eval_and_get_no_gradient():
    model = reward.load("pcqa-tiny", pretrained=False).train()
    towers = model.prompt_encoder.towers
    assert model.training and model.scorer.training
    assert not any(module.training for module in towers.modules())
    assert not any(p.requires_grad for p in towers.parameters())
    model(torch.rand(2, 3, 3, 32, 32), ["a cat", "a dog"]).score.sum().backward()
    assert all(p.grad is None for p in towers.parameters())
    assert all(p.grad is not None for p in model.scorer.head.parameters())


def test_each_distinct_prompt_is_encoded_once_across_calls():
    model = reward.load("pcqa-tiny", pretrained=False)
    encoded = _count_encoded(model.prompt_encoder)
    videos = torch.rand(3, 2, 3, 32, 32)
    first = model.score(videos, ["a cat", "a dog", "a cat"]).score
    again = model.score(videos, ["a cat", "a dog", "a cat"]).score
    model.score(videos[:2], ["a dog", "a bird"])
    for _ in range(5):
        model.score(videos, "a bird")
    assert encoded == [2, 1]
    assert torch.equal(first, again)
    cache = model.prompt_encoder.cache
    assert (len(cache), cache.misses) == (3, 3)


def test_cached_embeddings_equal_fresh_ones_and_the_key_includes_dtype():
    encoder = HybridPromptEncoder(tiny_text_towers())
    encoded = _count_encoded(encoder)
    cached = encoder(["a cat", "a dog"])
    assert torch.equal(encoder(["a dog", "a cat"]), cached.flip(0))
    encoder.cache.clear()
    assert torch.equal(encoder(["a cat", "a dog"]), cached)
    bf16 = encoder(["a cat", "a dog"], dtype=torch.bfloat16)
    assert bf16.dtype == torch.float32 and torch.allclose(bf16, cached, atol=0.05)
    assert encoded == [2, 2, 2]


def test_cache_is_bounded_lru_and_cleared_by_loading_weights():
    cache = PromptEmbeddingCache(max_size=2)
    for key in "abc":
        cache.put(key, torch.zeros(1))
    assert cache.get("a") is None and cache.get("b") is not None
    cache.put("d", torch.zeros(1))
    assert (cache.get("c"), len(cache)) == (None, 2)
    encoder = HybridPromptEncoder(tiny_text_towers(), cache_size=8)
    encoder(["a cat"])
    encoder.load_state_dict(encoder.state_dict())
    assert len(encoder.cache) == 0


def test_over_long_prompts_are_truncated_to_the_tower_context():
    encoder = HybridPromptEncoder(tiny_text_towers())
    long = " ".join(["a very detailed scene"] * 200)
    assert torch.isfinite(encoder([long])).all()


@pytest.mark.parametrize("layout", ["clip", "custom_text"])
@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
def test_text_weights_load_from_full_open_clip_checkpoints(tmp_path, layout, suffix):
    config = tiny_text_towers()[1]
    source = build_text_tower(config)
    prefix = "" if layout == "clip" else "text."
    state = {f"{prefix}{k}": v.clone() for k, v in source.state_dict().items()}
    state.update({"visual.proj": torch.randn(4, 4), "visual.conv1.weight": torch.randn(2, 3, 1, 1), "logit_scale": torch.ones(())})
    path = tmp_path / f"open_clip_model{suffix}"
    if suffix == ".bin":
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        save_file(state, str(path))
    target = build_text_tower(config)
    load_text_weights(target, path)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_text_weight_errors_name_the_fix(tmp_path):
    path = tmp_path / "vision_only.safetensors"
    save_file({"visual.proj": torch.randn(4, 4)}, str(path))
    with pytest.raises(WeightsNotFoundError, match="no open_clip text-tower keys"):
        load_text_weights(build_text_tower(tiny_text_towers()[0]), path)
    with pytest.raises(WeightsNotFoundError, match="no pretrained source"):
        resolve_text_checkpoint(tiny_text_towers()[0])
    assert resolve_text_checkpoint(TextTowerConfig("EVA02-L-14", pretrained=str(path))) == path
    with pytest.raises(ValueError, match="Hugging Face"):
        build_text_tower(TextTowerConfig("xlm-roberta-base-ViT-B-32"))


def test_tiny_config_round_trips_as_plain_dicts():
    config = tiny_config()
    rebuilt = type(config)(**dataclasses.asdict(config))
    assert rebuilt == config
