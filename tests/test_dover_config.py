"""The ``dover`` preset is the public model: official sizes, checkpoint layout and evaluation views."""
from __future__ import annotations

import json

import pytest
import torch

from reward.dover.model import DoverConfig, DoverReward, dover_tiny_config


@pytest.fixture(scope="module")
def official_state():
    """State-dict shapes of the full-size model, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = DoverReward(DoverConfig())
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


def test_full_size_model_has_the_dover_pth_layout(official_state):
    assert len(official_state) == 381
    assert official_state["technical_backbone.patch_embed.proj.weight"][0] == (96, 3, 2, 4, 4)
    assert official_state["technical_backbone.layers.2.blocks.5.attn.fragment_position_bias_table"][0] == (2535, 12)
    assert "technical_backbone.layers.3.blocks.1.attn.fragment_position_bias_table" not in official_state
    assert official_state["technical_backbone.layers.3.blocks.1.attn.relative_position_index"] == ((392, 392), torch.int64)
    assert official_state["technical_backbone.layers.2.downsample.reduction.weight"][0] == (768, 1536)
    assert official_state["aesthetic_backbone.stages.2.8.dwconv.weight"][0] == (384, 1, 1, 7, 7)
    assert official_state["aesthetic_backbone.stages.2.7.dwconv.weight"][0] == (384, 1, 3, 7, 7)
    assert official_state["technical_head.fc_hid.weight"][0] == (64, 768, 1, 1, 1)


@pytest.mark.golden
def test_default_views_and_sizes_are_the_public_evaluation(golden_dir):
    reference = json.loads((golden_dir / "dover_small_config.json").read_text())
    config = DoverConfig()
    technical, aesthetic = reference["sampling"]["technical_official"], reference["sampling"]["aesthetic_official"]
    assert (config.technical_clip_len, config.technical_num_clips, config.technical_frame_interval, config.technical_aligned) == (
        technical["clip_len"], technical["num_clips"], technical["frame_interval"], technical["aligned"]
    )
    assert (config.aesthetic_clip_len, config.aesthetic_t_frag, config.aesthetic_frame_interval) == (
        aesthetic["clip_len"], aesthetic["t_frag"], aesthetic["frame_interval"]
    )
    swin = reference["technical_backbone_SwinTransformer3D"]
    assert config.technical.embed_dim == swin["official_values_of_changed"]["embed_dim"]
    assert list(config.technical.depths) == swin["official_values_of_changed"]["depths"]
    assert list(config.technical.num_heads) == swin["official_values_of_changed"]["num_heads"]
    assert list(config.technical.window_size) == swin["kept_official_defaults"]["window_size"]
    assert list(config.technical.frag_biases) == swin["kept_official_defaults"]["frag_biases"]
    convnext = reference["aesthetic_backbone_ConvNeXt3D"]["official_values_of_changed"]
    assert (list(config.aesthetic.dims), list(config.aesthetic.depths)) == (convnext["dims"], convnext["depths"])


@pytest.mark.golden
def test_tiny_preset_is_the_reduced_reference(golden_dir):
    reference = json.loads((golden_dir / "dover_small_config.json").read_text())
    config = dover_tiny_config()
    changed = reference["technical_backbone_SwinTransformer3D"]["changed"]
    assert (config.technical.embed_dim, list(config.technical.depths), list(config.technical.num_heads)) == (
        changed["embed_dim"], changed["depths"], changed["num_heads"]
    )
    sampling = reference["sampling"]["technical"]
    assert (config.technical_clip_len, config.technical_num_clips, config.technical_aligned) == (
        sampling["clip_len"], sampling["num_clips"], sampling["aligned"]
    )


def test_config_round_trips_through_plain_dicts():
    import dataclasses

    config = dover_tiny_config(technical_num_clips=2)
    again = DoverConfig(**json.loads(json.dumps(dataclasses.asdict(config))))
    assert again == config
