"""DOVER's technical (Swin-3D + GRPB) and aesthetic (ConvNeXt-3D) branches against the reference goldens."""
from __future__ import annotations

import pytest
import torch

from reward.dover.checkpoint import load_dover_weights
from reward.dover.head import map_mean
from reward.blocks.swin3d import SwinTransformer3D, fragment_gate, relative_position_index

from dover_helpers import SMALL_SWIN, normalised_view, small_branches

FEATURE_TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def golden(golden_dir):
    return torch.load(golden_dir / "dover_small_golden.pt", weights_only=True)


@pytest.fixture(scope="module")
def branches(golden_dir):
    parts = small_branches()
    load_dover_weights(parts, golden_dir / "dover_small_DOVER.pth")
    for module in parts.values():
        module.eval()
    return parts


@pytest.fixture(scope="module")
def outputs(golden, branches):
    """Every forward the parity tests compare, run once."""
    technical = normalised_view(golden, "fragments_technical_uint8")
    aesthetic = normalised_view(golden, "resized_aesthetic_uint8")
    with torch.no_grad():
        feats = {
            "technical": branches["technical_backbone"](technical),
            "aesthetic": branches["aesthetic_backbone"](aesthetic),
            "t32": branches["technical_backbone"](torch.cat([technical, aesthetic], dim=2)),
            "clips2": branches["technical_backbone"](torch.cat([technical, aesthetic], dim=0)),
        }
        maps = {name: branches[f"{'aesthetic' if name == 'aesthetic' else 'technical'}_head"](f) for name, f in feats.items()}
    return feats, maps


@pytest.mark.golden
def test_golden_view_is_the_reference_input(golden):
    import hashlib

    view = normalised_view(golden, "fragments_technical_uint8")
    assert hashlib.sha256(view.numpy().tobytes()).hexdigest() == golden["view_technical_sha256"]


@pytest.mark.golden
@pytest.mark.parametrize("name, key", [("technical", "feat_technical"), ("aesthetic", "feat_aesthetic"), ("t32", "t32_feat_technical")])
def test_backbone_features_match_reference(outputs, golden, name, key):
    feats, _ = outputs
    assert feats[name].shape == golden[key].shape
    torch.testing.assert_close(feats[name], golden[key], **FEATURE_TOL)


@pytest.mark.golden
@pytest.mark.parametrize(
    "name, map_key, score_key",
    [
        ("technical", "score_map_technical", "score_technical"),
        ("aesthetic", "score_map_aesthetic", "score_aesthetic"),
        ("t32", "t32_score_map_technical", "t32_score_technical"),
        ("clips2", "clips2_score_map_technical", "clips2_score_technical"),
    ],
)
def test_score_maps_and_branch_scores_match_reference(outputs, golden, name, map_key, score_key):
    _, maps = outputs
    torch.testing.assert_close(maps[name], golden[map_key], **FEATURE_TOL)
    assert abs(float(map_mean(maps[name], 1)) - golden[score_key]) <= 1e-5


@pytest.mark.golden
def test_relative_position_index_is_the_checkpoint_buffer(golden_dir):
    state = torch.load(golden_dir / "dover_small_DOVER.pth", weights_only=True)
    stored = state["technical_backbone.layers.0.blocks.0.attn.relative_position_index"]
    assert stored.dtype == torch.int64
    assert torch.equal(relative_position_index((8, 7, 7)), stored)
    assert "attn.relative_position_index" in "".join(SwinTransformer3D(SMALL_SWIN).state_dict())


def test_fragment_gate_is_an_unclipped_integer_distance():
    """Stage 3 (14x14 tokens, 2x2 per fragment): unshifted gates reach 6, the shifted block's 12 (ids wrap)."""
    plain = fragment_gate((8, 14, 14), (8, 7, 7), (0, 0, 0), torch.device("cpu"), torch.float32)
    shifted = fragment_gate((8, 14, 14), (8, 7, 7), (0, 3, 3), torch.device("cpu"), torch.float32)
    assert plain.shape == (4, 392, 392)
    assert int(plain.max()) == 6 and int(shifted.max()) == 12
    assert torch.equal(plain, plain.round()) and int(plain.min()) == 0
