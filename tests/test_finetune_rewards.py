"""Reward plumbing for fine-tuning: named mixtures, frame selection, async scoring, the hacking guard."""
from __future__ import annotations

import threading
import warnings

import pytest
import torch

import reward
from integrations.finetune.async_reward import AsyncRewardScorer
from integrations.finetune.frames import parse_frames
from integrations.finetune.guard import RewardHackingGuard, RewardHackingWarning
from reward.mixture import RewardMixture, load_mixture, parse_mixture, resolve_reward
from reward.simple import brightness, colorfulness


def test_parse_mixture_and_its_errors():
    assert parse_mixture("aigc-vqa:1.0, pcqa:0.5") == [("aigc-vqa", 1.0), ("pcqa", 0.5)]
    assert parse_mixture("brightness") == [("brightness", 1.0)]
    for spec, message in [(":1", "empty name"), ("a:x", "not a number"), ("a:1,a:2", "twice")]:
        with pytest.raises(ValueError, match=message):
            parse_mixture(spec)


def test_mixture_scores_the_weighted_sum_with_gradients_and_round_trips(tmp_path):
    mixture = load_mixture("colorfulness:0.01,brightness:2.0")
    videos = torch.rand(2, 3, 3, 8, 8, requires_grad=True)
    out = mixture(videos)
    expected = 0.01 * colorfulness(videos) + 2.0 * brightness(videos)
    assert torch.allclose(out.score, expected)
    assert set(out.components) == {"colorfulness", "brightness"}, "a statistic's only component is its score"
    assert mixture.component_names == ("colorfulness", "brightness")
    out.score.sum().backward()
    assert videos.grad.abs().sum() > 0
    mixture.save_pretrained(tmp_path / "mix")
    reloaded = reward.VideoReward.from_pretrained(tmp_path / "mix")
    assert isinstance(reloaded, RewardMixture)
    assert torch.allclose(reloaded(videos.detach()).score, out.score.detach())
    with pytest.raises(ValueError, match="not in the mixture"):
        load_mixture("brightness", weights={"pcqa": "x"})


def test_resolve_reward_accepts_instances_names_and_specs():
    built = reward.load("brightness")
    assert resolve_reward(built) is built
    assert resolve_reward("brightness").architecture == "statistic"
    assert isinstance(resolve_reward("brightness:1,colorfulness:0.1"), RewardMixture)


def test_frame_selection_strings():
    generator = torch.Generator().manual_seed(0)
    assert parse_frames("all").resolve(8).tolist() == list(range(8))
    assert parse_frames("stride:3").resolve(8).tolist() == [0, 3, 6]
    assert parse_frames("first:2").resolve(8).tolist() == [0, 1]
    chosen = parse_frames("random:3").resolve(8, generator=generator)
    assert len(chosen) == 3 and chosen.tolist() == sorted(set(chosen.tolist()))
    for spec, message in [("every:2", "unknown frame selection"), ("stride:x", "needs an integer"), ("first:0", ">= 1")]:
        with pytest.raises(ValueError, match=message):
            parse_frames(spec)


def test_async_scorer_runs_concurrently_with_the_caller_and_matches_inline_scores():
    sampling_started = threading.Event()
    model = reward.load("colorfulness")

    def waiting_reward(videos, prompts):
        # Only finishes once the caller has moved on to "sampling" the next batch: proves overlap.
        assert sampling_started.wait(timeout=30), "the reward did not overlap the caller"
        return model(videos, prompts)

    videos = torch.rand(2, 2, 3, 8, 8)
    with AsyncRewardScorer(waiting_reward) as scorer:
        future = scorer.submit(videos, ["a", "b"])
        sampling_started.set()
        threaded = future.result(timeout=60)
    inline = AsyncRewardScorer(model, max_workers=0).submit(videos, ["a", "b"]).result()
    assert torch.equal(threaded.score, inline.score) and not threaded.score.requires_grad


def test_guard_warns_when_the_training_reward_is_hacked_and_not_when_both_improve():
    guard = RewardHackingGuard(reward.load("brightness"), reward.load("colorfulness"), every_n_steps=2)
    generator = torch.Generator().manual_seed(0)
    colourful = torch.rand(4, 2, 3, 8, 8, generator=generator) * 0.6
    assert guard.due(0) and not guard.due(1) and guard.due(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not guard.evaluate(0, colourful, ["p"] * 4).diverged
        assert not guard.evaluate(2, (colourful * 1.5).clamp(0, 1), ["p"] * 4).diverged  # brighter AND more colourful
    washed_out = colourful * 0.2 + 0.8  # much brighter, far less colourful: the hack
    with pytest.warns(RewardHackingWarning, match="reward hacking at step 4"):
        report = guard.evaluate(4, washed_out, ["p"] * 4)
    assert report.diverged and report.train_gain > 0 > report.watch_gain
    restored = RewardHackingGuard(guard.train_reward, guard.watch_reward, every_n_steps=2)
    restored.load_state_dict(guard.state_dict())
    assert restored.history == guard.history and restored.baseline == guard.baseline
