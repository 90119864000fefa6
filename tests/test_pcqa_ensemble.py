"""PCQA ensembles: z-normalised averaging, statistics over a dataset, flip TTA, shared encoder, save/load."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

import reward
from reward.pcqa import PCQAEnsemble, PCQAReward, compute_ensemble_statistics
from reward.pcqa.presets import ensemble_config, tiny_config, tiny_text_towers

PROMPTS = ["a red fox running through fresh snow", "a paper boat on a river", "a city at night"]


def _members() -> list[PCQAReward]:
    """Two trained-looking tiny members that differ in backbone (CNN / ViT) and mixer."""
    first = PCQAReward(tiny_config(mixer="dot"))
    vit = tiny_config(backbone="test_vit", backbone_kwargs={"img_size": 64}, mixer="concat", num_frames=3)
    members = [first, PCQAReward(vit, prompt_encoder=first.prompt_encoder)]
    with torch.no_grad():
        for member in members:
            for parameter in member.scorer.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.1)
    return members


def _batches(count: int = 3, size: int = 2):
    return [(torch.rand(size, 4, 3, 40, 40), PROMPTS[:size]) for _ in range(count)]


def test_score_is_the_mean_of_z_normalised_members():
    members = _members()
    videos = torch.rand(3, 4, 3, 40, 40)
    raw = torch.stack([member.score(videos, PROMPTS).score for member in members])
    ensemble = PCQAEnsemble.from_members(members).eval()
    ensemble.pred_mean.copy_(torch.tensor([0.3, -1.2]))
    ensemble.pred_std.copy_(torch.tensor([2.0, 0.5]))
    ensemble.stats_count.fill_(10)
    out = ensemble.score(videos, PROMPTS)
    by_hand = [(raw[0] - 0.3) / 2.0, (raw[1] + 1.2) / 0.5]
    torch.testing.assert_close(out.components["member_0"], by_hand[0])
    torch.testing.assert_close(out.components["member_1"], by_hand[1])
    torch.testing.assert_close(out.score, (by_hand[0] + by_hand[1]) / 2)


def test_statistics_match_a_hand_computation_and_round_trip(tmp_path):
    ensemble = PCQAEnsemble.from_members(_members())
    batches = _batches()
    stats = compute_ensemble_statistics(ensemble, batches)
    raw = torch.cat([torch.stack([s.score for s in (m.score(v, p) for m in _as_rewards(ensemble))]) for v, p in batches], dim=1)
    assert stats["count"] == 6
    torch.testing.assert_close(torch.tensor(stats["std"], dtype=torch.float64), raw.double().std(dim=1, unbiased=False), atol=1e-6, rtol=0)
    torch.testing.assert_close(ensemble.pred_mean, raw.mean(dim=1), atol=1e-6, rtol=0)
    torch.testing.assert_close(ensemble.pred_std, raw.std(dim=1, unbiased=False), atol=1e-6, rtol=0)
    normalised = ensemble.score(*batches[0]).components
    assert set(normalised) == {"member_0", "member_1"}

    ensemble.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architecture"] == "pcqa-ensemble"
    assert [m["backbone"] for m in saved["config"]["members"]] == ["test_convnext", "test_vit"]
    loaded = reward.load("pcqa-ensemble", weights=str(tmp_path))
    assert isinstance(loaded, PCQAEnsemble) and loaded.config == ensemble.config
    assert torch.equal(loaded.pred_mean, ensemble.pred_mean) and torch.equal(loaded.pred_std, ensemble.pred_std)
    videos = torch.rand(2, 5, 3, 30, 44)
    assert torch.equal(loaded.score(videos, PROMPTS[:2]).score, ensemble.score(videos, PROMPTS[:2]).score)


def _as_rewards(ensemble: PCQAEnsemble) -> list[PCQAReward]:
    """Each member as a stand-alone reward sharing the ensemble's modules."""
    return [
        PCQAReward(config, prompt_encoder=ensemble.prompt_encoder, scorer=scorer).eval()
        for config, scorer in zip(ensemble.config.members, ensemble.members)
    ]


def test_flip_tta_is_the_mean_of_flipped_and_unflipped_scores():
    plain = PCQAEnsemble.from_members(_members())
    compute_ensemble_statistics(plain, _batches())
    tta = PCQAEnsemble.from_members([*_as_rewards(plain)], flip_tta=True)
    tta.load_state_dict(plain.state_dict())
    videos = torch.rand(2, 3, 3, 40, 52)
    expected = (plain.score(videos, PROMPTS[:2]).score + plain.score(videos.flip(-1), PROMPTS[:2]).score) / 2
    torch.testing.assert_close(tta.score(videos, PROMPTS[:2]).score, expected, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(plain.score(videos, PROMPTS[:2]).score, expected)


def test_ensemble_is_differentiable_and_encodes_each_prompt_once():
    ensemble = PCQAEnsemble.from_members(_members(), flip_tta=True)
    ensemble.set_compute_dtype("bf16")
    compute_ensemble_statistics(ensemble, _batches(count=1, size=3))
    seen = []

    def count(module, args, output):
        seen.append(args[0].shape[0])

    ensemble.prompt_encoder.towers[0].register_forward_hook(count)
    videos = torch.rand(3, 4, 3, 40, 40, requires_grad=True)
    ensemble(videos, PROMPTS).score.sum().backward()
    assert seen == []
    ensemble(videos[:1], "a new prompt")
    assert seen == [1]
    assert torch.isfinite(videos.grad).all() and videos.grad.abs().sum() > 0


def test_missing_statistics_warn_and_bad_statistics_raise():
    ensemble = PCQAEnsemble.from_members(_members())
    with pytest.warns(UserWarning, match="compute_ensemble_statistics"):
        ensemble.score(torch.rand(1, 1, 3, 32, 32), PROMPTS[0])
    with pytest.raises(ValueError, match="at least 2 videos"):
        compute_ensemble_statistics(ensemble, _batches(count=1, size=1))
    with torch.no_grad():
        ensemble.members[1].head[-1].weight.zero_()
    with pytest.raises(ValueError, match=r"members \[1\] predict one constant"):
        compute_ensemble_statistics(ensemble, _batches())
    stats_ready = PCQAEnsemble.from_members(_members())
    compute_ensemble_statistics(stats_ready, _batches())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats_ready.score(torch.rand(1, 1, 3, 32, 32), PROMPTS[0])


def test_members_must_share_text_towers_and_presets_differ_in_backbone_and_mixer():
    other_towers = tiny_text_towers()[:1]
    with pytest.raises(ValueError, match="same text_towers"):
        PCQAEnsemble.from_members([PCQAReward(tiny_config()), PCQAReward(tiny_config(text_towers=other_towers))])
    with pytest.raises(ValueError, match="other text-tower weights"):
        PCQAEnsemble.from_members([PCQAReward(tiny_config()), PCQAReward(tiny_config())])
    torch.manual_seed(1)
    first = PCQAReward(tiny_config())
    torch.manual_seed(1)
    assert len(PCQAEnsemble.from_members([first, PCQAReward(tiny_config(mixer="concat"))]).members) == 2
    config = ensemble_config(flip_tta=True)
    assert config.flip_tta and len({(m.backbone, m.mixer) for m in config.members}) == 3
    assert {m.mixer for m in config.members} == {"dot", "concat"}
