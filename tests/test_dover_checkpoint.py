"""Loading DOVER.pth-layout checkpoints: prefixes and wrappers tolerated, wrong files refused with the keys named."""
from __future__ import annotations

import pytest
import torch

from reward.dover.checkpoint import load_dover_weights
from reward.blocks.swin3d import Swin3DConfig, SwinTransformer3D
from reward.errors import CheckpointError, WeightsNotFoundError

from dover_helpers import small_branches


@pytest.fixture(scope="module")
def small_state(golden_dir):
    return torch.load(golden_dir / "dover_small_DOVER.pth", weights_only=True)


def assert_loaded(parts, state):
    for prefix, module in parts.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, state[f"{prefix}.{key}"]), f"{prefix}.{key}"


@pytest.mark.golden
@pytest.mark.parametrize("wrap", ["plain", "module_prefix", "state_dict_wrapper"])
def test_checkpoint_loads_with_prefix_or_wrapper(small_state, tmp_path, wrap):
    state = {
        "plain": small_state,
        "module_prefix": {f"module.{k}": v for k, v in small_state.items()},
        "state_dict_wrapper": {"state_dict": small_state},
    }[wrap]
    path = tmp_path / "DOVER.pth"
    torch.save(state, path)
    parts = small_branches()
    load_dover_weights(parts, path)
    assert_loaded(parts, small_state)


@pytest.mark.golden
def test_one_branch_can_be_loaded_alone(small_state):
    parts = small_branches()
    technical = {k: parts[k] for k in ("technical_backbone", "technical_head")}
    load_dover_weights(technical, small_state)
    assert_loaded(technical, small_state)


@pytest.mark.golden
def test_missing_keys_are_listed(small_state):
    partial = {k: v for k, v in small_state.items() if not k.startswith("aesthetic_backbone.stages.2.")}
    with pytest.raises(CheckpointError, match=r"18 missing keys: aesthetic_backbone\.stages\.2\.0\.dwconv\.bias"):
        load_dover_weights(small_branches(), partial)


@pytest.mark.golden
def test_another_models_checkpoint_lists_missing_and_unexpected_keys(golden_dir):
    with pytest.raises(CheckpointError) as error:
        load_dover_weights(small_branches(), golden_dir / "imagereward_small_ImageReward.pt")
    message = str(error.value)
    assert "160 missing keys: aesthetic_backbone." in message
    assert "101 unexpected keys: blip." in message


@pytest.mark.golden
def test_checkpoint_of_another_size_names_the_shapes(small_state):
    parts = small_branches()
    parts["technical_backbone"] = SwinTransformer3D(Swin3DConfig(embed_dim=32, depths=(1, 1, 2, 1), num_heads=(2, 4, 8, 16)))
    with pytest.raises(CheckpointError, match=r"keys with other shapes: technical_backbone\..*\(checkpoint \(24,\) vs model \(32,\)\)"):
        load_dover_weights(parts, small_state)


@pytest.mark.golden
def test_truncated_file_is_refused(golden_dir, tmp_path):
    data = (golden_dir / "dover_small_DOVER.pth").read_bytes()
    path = tmp_path / "DOVER.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_dover_weights(small_branches(), path)


def test_missing_file_says_where_the_weights_come_from(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"huggingface\.co/teowu/DOVER.*weights='/path/to/DOVER\.pth'"):
        load_dover_weights(small_branches(), tmp_path / "nowhere" / "DOVER.pth")


def test_unknown_part_name_is_refused():
    with pytest.raises(ValueError, match="unknown DOVER parts"):
        load_dover_weights({"backbone": torch.nn.Linear(1, 1)}, {})
