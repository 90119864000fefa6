"""The shared reward machinery: input checks, native save/load, weight resolution, registry."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

import reward
from reward import registry
from reward.base import VideoReward, register_architecture
from reward.checkpoints import atomic_path, load_state_dict_strict
from reward.errors import CheckpointError, RewardInputError, WeightsNotFoundError
from reward.output import RewardOutput
from reward.weights import resolve_file


@dataclass
class _LinearConfig:
    width: int = 4


@register_architecture
class _LinearReward(VideoReward):
    """Test-only reward: a linear read-out of mean colour, so weights matter."""

    architecture = "test-linear"
    config_class = _LinearConfig

    def __init__(self, config: _LinearConfig):
        super().__init__(config)
        self.proj = nn.Linear(3, config.width)
        self.head = nn.Linear(config.width, 1)

    def _forward(self, videos, prompts):
        feats = self.proj(videos.mean(dim=(1, 3, 4)))
        value = self.head(feats).squeeze(-1)
        return RewardOutput(score=value, components={"linear": value})


def _videos(b=2, t=3, h=8, w=10):
    return torch.rand(b, t, 3, h, w)


@pytest.mark.parametrize(
    "videos, message",
    [
        (torch.rand(3, 3, 8, 8), "5-D"),
        (torch.rand(1, 2, 8, 8, 3), "channels-last"),
        ((torch.rand(1, 2, 3, 8, 8) * 255).to(torch.uint8), "videos.float() / 255"),
        (torch.rand(1, 2, 3, 8, 8) * 255, "0-255"),
        (torch.rand(1, 2, 3, 8, 8) * 2 - 1, "(videos + 1) / 2"),
        (torch.full((1, 2, 3, 8, 8), float("nan")), "NaN"),
        (torch.rand(1, 2, 4, 8, 8), "3 RGB channels"),
        ([[0.0]], "torch.Tensor"),
    ],
)
def test_bad_videos_name_the_fix(videos, message):
    model = _LinearReward(_LinearConfig())
    with pytest.raises(RewardInputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        model(videos, ["a prompt"] * (len(videos) if isinstance(videos, torch.Tensor) else 1))


@pytest.mark.parametrize(
    "prompts, message",
    [(["one"], "got 1 prompts for 2 videos"), (["ok", "  "], "prompt 1 is empty"), (["ok", 3], "prompt 1 must be a str"), (None, "pass prompts")],
)
def test_bad_prompts_name_the_problem(prompts, message):
    with pytest.raises(RewardInputError, match=message):
        _LinearReward(_LinearConfig())(_videos(), prompts)


def test_single_string_prompt_is_broadcast_and_image_input_works():
    model = _LinearReward(_LinearConfig())
    out = model(_videos(b=3, t=1), "one prompt for all")
    assert out.score.shape == (3,)
    assert set(out.components) == {"linear"}


def test_gradients_reach_pixels_and_score_needs_no_grad():
    model = _LinearReward(_LinearConfig()).train()
    videos = _videos().requires_grad_()
    model(videos, "p").score.sum().backward()
    assert videos.grad is not None and torch.isfinite(videos.grad).all() and videos.grad.abs().sum() > 0
    out = model.score(videos, "p")
    assert not out.score.requires_grad
    assert model.training, "score() must restore the previous mode"


def test_save_and_load_round_trip_is_exact(tmp_path):
    model = _LinearReward(_LinearConfig(width=5))
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["architecture"] == "test-linear" and config["config"] == {"width": 5}
    loaded = VideoReward.from_pretrained(tmp_path / "ckpt")
    assert isinstance(loaded, _LinearReward)
    videos = _videos()
    torch.testing.assert_close(loaded(videos, "p").score, model(videos, "p").score, rtol=0, atol=0)
    assert not list(tmp_path.glob("ckpt/.*.tmp")), "no temp files may be left behind"


def test_strict_load_lists_missing_unexpected_and_shapes():
    model = _LinearReward(_LinearConfig())
    state = model.state_dict()
    state.pop("head.bias")
    state["extra.weight"] = torch.zeros(1)
    state["proj.weight"] = torch.zeros(2, 2)
    with pytest.raises(CheckpointError) as info:
        load_state_dict_strict(model, state, source="bad.pth")
    text = str(info.value)
    assert "missing keys: head.bias" in text and "unexpected keys: extra.weight" in text and "proj.weight" in text


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "file.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_download_from_url_is_cached(http_server, tmp_path, monkeypatch):
    served, base = http_server
    monkeypatch.setenv("AIGC_REWARD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    model = _LinearReward(_LinearConfig(width=3))
    model.save_pretrained(served / "model")
    loaded = VideoReward.from_pretrained(f"{base}/model")
    videos = _videos()
    torch.testing.assert_close(loaded(videos, "p").score, model(videos, "p").score)
    (served / "model" / "model.safetensors").unlink()  # a second load must come from the cache
    VideoReward.from_pretrained(f"{base}/model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="HF_HUB_OFFLINE"):
        resolve_file(f"{base}/other.pth")


def test_missing_weights_error_says_what_was_tried(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="not a local file"):
        resolve_file(str(tmp_path / "nope.pth"))


def test_a_reward_without_forward_fails_at_construction():
    class Incomplete(VideoReward):
        """Forgets the scoring hook."""

    with pytest.raises(TypeError, match="_forward"):
        Incomplete(None)


def test_registry_lists_and_loads():
    names = reward.list_rewards()
    assert "colorfulness" in names and "brightness" in names
    with pytest.raises(KeyError, match="choose one of"):
        reward.load("no-such-reward")
    model = reward.load("brightness")
    assert torch.allclose(model(torch.full((1, 2, 3, 4, 4), 0.5)).score, torch.tensor([0.5]))


def test_colorfulness_prefers_saturated_video():
    grey = torch.full((1, 2, 3, 16, 16), 0.5)
    colourful = torch.rand(1, 2, 3, 16, 16)
    model = reward.load("colorfulness")
    assert model(colourful).score > model(grey).score + 10


def test_atomic_files_get_the_usual_permissions(tmp_path):
    import os

    current = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "table.csv") as tmp:
            tmp.write_text("a,b\n")
    finally:
        os.umask(current)
    assert (tmp_path / "table.csv").stat().st_mode & 0o777 == 0o644


def test_builtin_preset_table_matches_the_registrations():
    """reward.builtin_presets names exactly what the built-in modules register, in which module, with the same
    metadata; the CLI's --sizes choices are AIGC-VQA's named sizes."""
    from reward.aigcvqa.model import SIZES
    from reward.builtin_presets import BUILTIN_PRESETS, BuiltinPreset
    from reward.cli import CONVERT_SIZES
    from reward.registry import _REWARDS, BUILTIN_PRESET_MODULES, import_builtin_architectures

    import_builtin_architectures()
    registered = {
        name: BuiltinPreset(
            spec.builder.__module__, spec.description, spec.components, spec.weight_sources,
            spec.higher_is_better, spec.score_range, spec.tags, spec.architecture,
        )
        for name, spec in _REWARDS.items()
        if spec.builder.__module__ in BUILTIN_PRESET_MODULES
    }
    assert registered == BUILTIN_PRESETS
    assert sorted(CONVERT_SIZES) == sorted(SIZES)


def test_each_model_reward_lives_in_a_package_named_after_it():
    """A newcomer finds a reward, its converter and its presets by the reward's name (reward/<name>/), and the
    building blocks several rewards share (Swin-3D, ConvNeXt-3D, BLIP, ST-Adapter) in reward/blocks/."""
    import importlib

    from reward.builtin_presets import BUILTIN_PRESETS

    for name, preset in BUILTIN_PRESETS.items():
        if preset.module == "reward.simple":
            continue
        family = name.removesuffix("-tiny").replace("-", "")
        family = "pcqa" if family.startswith("pcqa") else family
        assert preset.module == f"reward.{family}.presets", (name, preset.module)
    for family, converter in (("dover", "read_dover_state_dict"), ("imagereward", "read_imagereward")):
        assert hasattr(importlib.import_module(f"reward.{family}.checkpoint"), converter)
    for block in ("swin3d", "convnext3d", "blip", "st_adapter"):
        importlib.import_module(f"reward.blocks.{block}")


def test_listed_weight_sources_name_the_hub_files_the_loaders_fetch():
    """The preset table's weight-source text (also the loaders' error text) names the default hub files."""
    from reward.dover.checkpoint import DOVER_DEFAULT_WEIGHTS, DOVER_HUB_REPO, WHERE_DOVER_WEIGHTS_COME_FROM
    from reward.imagereward.checkpoint import CHECKPOINT_NAME, HUB_REPO
    from reward.aigcvqa.zero_shot import WHERE_AIGC_VQA_WEIGHTS_COME_FROM
    from reward.builtin_presets import BUILTIN_PRESETS

    assert f"huggingface.co/{DOVER_HUB_REPO}/resolve/main/DOVER.pth" in WHERE_DOVER_WEIGHTS_COME_FROM
    assert DOVER_DEFAULT_WEIGHTS in WHERE_AIGC_VQA_WEIGHTS_COME_FROM and HUB_REPO in WHERE_AIGC_VQA_WEIGHTS_COME_FROM
    assert f"hub {HUB_REPO} ({CHECKPOINT_NAME} + med_config.json)" in BUILTIN_PRESETS["imagereward"].weight_sources
    from reward.pcqa.presets import CONVNEXT_S, EFFICIENTVIT_L, EVA02_B

    for name, backbone in (("pcqa-convnext-s", CONVNEXT_S), ("pcqa-efficientvit-l", EFFICIENTVIT_L), ("pcqa-eva02-b", EVA02_B)):
        assert f"timm ImageNet {backbone} from the hub" in BUILTIN_PRESETS[name].weight_sources


def test_listing_and_describing_rewards_imports_no_model_code():
    """`aigc-reward list` and reward.list_rewards / reward_spec stay fast: the preset modules load on first use."""
    script = """
import sys
import reward
from reward.cli import main
heavy = ("reward.simple", "reward.dover.presets", "reward.pcqa.presets", "timm", "open_clip", "transformers", "diffusers")
assert main(["list", "--json"]) == 0
specs = [reward.reward_spec(name) for name in reward.list_rewards()]
assert [m for m in heavy if m in sys.modules] == [], sorted(sys.modules)
assert specs[0].name == "aigc-vqa" and specs[0].components == ("technical", "aesthetic", "alignment")
model = reward.reward_spec("brightness").builder(pretrained=False)
assert type(model).__name__ == "StatisticReward" and "reward.simple" in sys.modules
assert "reward.pcqa.presets" not in sys.modules
"""
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["name"] == "aigc-vqa"


def test_user_presets_register_beside_the_builtin_ones(monkeypatch):
    monkeypatch.setattr(registry, "_REWARDS", dict(registry._REWARDS))  # the test's preset goes with it

    @reward.register_reward("test-user-linear", description="a user preset", components=("linear",), weight_sources="none")
    def build(weights=None, pretrained=True, **overrides):
        return _LinearReward(_LinearConfig(**overrides))

    assert "test-user-linear" in reward.list_rewards() and "aigc-vqa" in reward.list_rewards()
    assert reward.reward_spec("test-user-linear").builder is build
    assert reward.load("test-user-linear", width=3).proj.out_features == 3


def test_the_readme_user_reward_example_runs_and_round_trips(monkeypatch, tmp_path):
    """The README's "Your own reward" block registers, loads, scores, and reloads from save_pretrained."""
    from reward import base

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = readme.split("<!-- user-reward-example -->\n```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.setattr(registry, "_REWARDS", dict(registry._REWARDS))
    monkeypatch.setattr(base, "ARCHITECTURES", dict(base.ARCHITECTURES))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    model = namespace["model"]
    videos = torch.zeros(1, 2, 3, 8, 8)
    videos[:, :, 0] = 1.0
    assert torch.allclose(model.score(videos, "red").score, torch.tensor([2.0]))
    model.save_pretrained(tmp_path / "redness")
    assert reward.load("redness", weights=tmp_path / "redness").gain.item() == 2.0
