"""``reward.load(name, weights=folder)`` returns the reward asked for: a native folder of another architecture
is refused with a CheckpointError naming both, while ``VideoReward.from_pretrained`` still loads any folder."""
from __future__ import annotations

import pytest
import torch

import reward
from reward.errors import CheckpointError


@pytest.fixture(scope="module")
def pcqa_folder(tmp_path_factory):
    torch.manual_seed(0)
    return reward.load("pcqa-tiny", pretrained=False).save_pretrained(tmp_path_factory.mktemp("pcqa") / "model")


def test_a_folder_of_another_architecture_is_refused_naming_both(pcqa_folder):
    with pytest.raises(CheckpointError, match=r"holds a 'pcqa' model, but reward.load\('dover-tiny'\) builds 'dover'") as error:
        reward.load("dover-tiny", weights=pcqa_folder)
    message = str(error.value)
    assert "['pcqa-convnext-s', 'pcqa-efficientvit-l', 'pcqa-eva02-b', 'pcqa-tiny']" in message  # where it does load
    assert "VideoReward.from_pretrained" in message
    with pytest.raises(CheckpointError, match="holds a 'pcqa' model, but reward.load\\('pcqa-ensemble'\\) builds 'pcqa-ensemble'"):
        reward.load("pcqa-ensemble", weights=pcqa_folder)


def test_statistic_folders_are_checked_too(tmp_path):
    folder = reward.load("brightness").save_pretrained(tmp_path / "brightness")
    with pytest.raises(CheckpointError, match="holds a 'statistic' model, but reward.load\\('imagereward-tiny'\\)"):
        reward.load("imagereward-tiny", weights=folder)


def test_the_folder_still_loads_under_its_own_presets_and_through_from_pretrained(pcqa_folder):
    videos, prompts = torch.rand(1, 4, 3, 32, 32), "a red fox"
    expected = reward.VideoReward.from_pretrained(pcqa_folder).score(videos, prompts).score
    for name in ("pcqa-tiny", "pcqa-convnext-s"):
        torch.testing.assert_close(reward.load(name, weights=pcqa_folder).score(videos, prompts).score, expected)


def test_every_builtin_preset_declares_the_architecture_it_builds():
    """The table's ``architecture`` (what load checks folders against) is what each preset's builder returns
    (built on the meta device: no memory, no weights)."""
    for name in reward.list_rewards():
        with torch.device("meta"):
            model = reward.load(name, pretrained=False)
        assert reward.reward_spec(name).architecture == model.architecture, name


def test_the_listing_shows_each_presets_architecture(capsys):
    import json

    from reward.cli import main

    assert main(["list", "--json"]) == 0
    listed = {entry["name"]: entry["architecture"] for entry in json.loads(capsys.readouterr().out)}
    assert listed["dover-tiny"] == listed["dover"] == "dover" and listed["pcqa-ensemble"] == "pcqa-ensemble"
