"""Rewards that do not read prompts (DOVER, colorfulness, brightness) accept any prompt, "" included;
a mixture checks prompts only for the members that read them."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import reward
from integrations.diffusers import build_tiny_pipeline, tiny_generation_kwargs
from integrations.diffusers.best_of_n import best_of_n
from integrations.trl import make_reward_fn
from reward.base import VideoReward, register_architecture
from reward.errors import RewardInputError
from reward.mixture import MixtureConfig, RewardMixture
from reward.output import RewardOutput
from tests.diffusers_support import one_thread  # noqa: F401  (autouse fixture)

#: DOVER views shrunk to 4 frames of 32x32, so the test scores in well under a second.
SMALL_DOVER = dict(
    technical_clip_len=4, technical_aligned=4, technical_fragments=2, technical_fragment_size=8,
    aesthetic_clip_len=4, aesthetic_t_frag=4, aesthetic_size=32,
)


@dataclass
class _PromptLengthConfig:
    scale: float = 1.0


@register_architecture
class _PromptLength(VideoReward):
    """Test-only prompt-reading reward: the prompt's length, so a mixture shows that prompts reach it."""

    architecture = "test-prompt-length"
    config_class = _PromptLengthConfig
    component_names = ("length",)

    def _forward(self, videos, prompts):
        value = videos.new_tensor([float(len(p)) for p in prompts]) * self.config.scale
        return RewardOutput(score=value, components={"length": value})


@pytest.fixture(scope="module")
def dover():
    torch.manual_seed(0)
    return reward.load("dover-tiny", pretrained=False, **SMALL_DOVER)


def _videos(batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["colorfulness", "brightness", "dover"])
def test_prompt_free_rewards_ignore_empty_odd_or_missing_prompts(name, dover):
    model = dover if name == "dover" else reward.load(name)
    videos = _videos()
    expected = model.score(videos, None).score
    for prompts in ("", ["", ""], ["", "a fox"], [""], ["a", "b", "c"], [None, 3]):
        torch.testing.assert_close(model.score(videos, prompts).score, expected)


def test_prompt_reading_rewards_still_refuse_empty_prompts():
    with pytest.raises(RewardInputError, match="prompt 0 is empty"):
        _PromptLength(_PromptLengthConfig())(_videos(), ["", "a fox"])


def test_a_mixture_checks_prompts_only_for_members_that_read_them(dover):
    videos = _videos()
    free = RewardMixture(MixtureConfig([("colorfulness", 1.0), ("dover", 2.0)]), {"dover": dover})
    assert not free.requires_prompts
    out = free.score(videos, "")
    torch.testing.assert_close(out.score, out.components["colorfulness"] + 2 * out.components["dover"])

    mixed = RewardMixture(MixtureConfig([("brightness", 1.0), ("length", 1.0)]), {"length": _PromptLength(_PromptLengthConfig())})
    assert mixed.requires_prompts
    with pytest.raises(RewardInputError, match="prompt 1 is empty"):
        mixed.score(videos, ["a fox", " "])
    out = mixed.score(videos, ["a fox", "a cat on a sofa"])
    assert out.components["length"].tolist() == [5.0, 15.0]


def test_trl_reward_fn_scores_unconditional_samples_with_a_prompt_free_reward():
    rewards, metadata = make_reward_fn("colorfulness")(torch.rand(3, 3, 16, 16), ["", "", ""], None)
    assert rewards.shape == (3,) and set(metadata) == {"colorfulness"}


def test_best_of_n_generates_unconditionally_for_a_prompt_free_reward_and_refuses_early_otherwise(monkeypatch):
    pipe = build_tiny_pipeline("text-to-video-sd")
    kwargs = dict(tiny_generation_kwargs("text-to-video-sd"), num_inference_steps=2, progress=False)
    result = best_of_n(pipe, "", "brightness", n=2, **kwargs)
    assert [c.prompt for c in result.candidates] == ["", ""] and len({c.score for c in result.candidates}) == 2

    calls = []
    original = type(pipe).__call__
    monkeypatch.setattr(type(pipe), "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    with pytest.raises(RewardInputError, match="prompt 0 is empty"):
        best_of_n(pipe, "", _PromptLength(_PromptLengthConfig()), n=2, **kwargs)
    assert calls == []  # refused before generating anything
