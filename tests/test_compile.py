"""``VideoReward.compile``: compiled backbones score like eager ones, recompile boundedly, fall back with one
warning, and never change checkpoints. Inductor takes minutes per reward on this 2-core CPU, so only one
test uses it; the others use Dynamo alone (``backend="eager"``), which is what decides graphs and recompiles.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from omegaconf import OmegaConf
from torch._dynamo.utils import counters

import reward
from reward import cli
from reward.compile import COMPILED
from reward.pcqa.config import PCQAEnsembleConfig
from reward.pcqa.ensemble import PCQAEnsemble
from reward.pcqa.presets import tiny_config
from training_recipes.config import BASE_CONFIG, load_config
from training_recipes.modeling import build_model

PROMPT = "a red fox running in the snow"


def _videos(batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 4, 3, 32, 32, generator=torch.Generator().manual_seed(batch))


def _score_and_grad(model: reward.VideoReward, videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = videos.clone().requires_grad_(True)
    score = model(pixels, PROMPT).score
    score.sum().backward()
    return score.detach(), pixels.grad


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


@pytest.mark.slow
def test_inductor_compiled_reward_matches_eager_scores_and_gradients():
    model = reward.load("imagereward-tiny", pretrained=False)
    videos = _videos()
    score, grad = _score_and_grad(model, videos)
    model.compile()
    compiled_score, compiled_grad = _score_and_grad(model, videos)
    assert set(model.compile_status.values()) == {COMPILED}
    assert set(model.compile_status) == {"scorer.blip.encode_image", "scorer.blip.encode_text"}
    torch.testing.assert_close(compiled_score, score, atol=1e-5, rtol=0)
    torch.testing.assert_close(compiled_grad, grad, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", [pytest.param("aigc-vqa-tiny", marks=pytest.mark.slow), "pcqa-tiny"])
def test_every_backbone_is_compiled_and_scores_match(name):
    model = reward.load(name, pretrained=False)
    videos = _videos()
    score, grad = _score_and_grad(model, videos)
    model.compile(backend="aot_eager")  # Dynamo + AOTAutograd (forward and backward graphs), no code generation
    compiled_score, compiled_grad = _score_and_grad(model, videos)
    expected = {
        "aigc-vqa-tiny": {"technical_backbone", "aesthetic_backbone", "alignment.blip.encode_image", "alignment.blip.encode_text"},
        "pcqa-tiny": {"scorer.vision.model"},
    }[name]
    assert model.compile_status == dict.fromkeys(expected, COMPILED)
    assert counters["stats"]["unique_graphs"] == len(expected)  # one graph per backbone: no graph breaks
    torch.testing.assert_close(compiled_score, score, atol=1e-5, rtol=0)
    torch.testing.assert_close(compiled_grad, grad, atol=1e-4, rtol=0)


def test_batch_size_changes_compile_each_backbone_at_most_twice():
    """Default (dynamic=None): the first size static, the second one graph with a symbolic batch that serves the rest."""
    model = reward.load("imagereward-tiny", pretrained=False).compile(backend="eager")
    graphs = []
    for batch in (2, 3, 4, 5, 7):
        with torch.no_grad():
            model(_videos(batch), PROMPT)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs == [2, 4, 4, 4, 4]  # two backbones


def test_one_graph_per_shape_when_asked():
    model = reward.load("imagereward-tiny", pretrained=False).compile(backend="eager", dynamic=False)
    for batch in (2, 3, 2):
        with torch.no_grad():
            model(_videos(batch), PROMPT)
    assert counters["stats"]["unique_graphs"] == 4  # sizes 2 and 3, two backbones each; size 2 again reuses its graphs


def _failing_backend(graph_module, example_inputs):
    raise RuntimeError("no compiler here")


def test_a_compile_failure_falls_back_to_eager_with_one_warning():
    model = reward.load("imagereward-tiny", pretrained=False)
    videos = _videos()
    expected = model.score(videos, PROMPT).score
    model.compile(backend=_failing_backend)
    with pytest.warns(RuntimeWarning, match=r"torch.compile failed for imagereward\.scorer\.blip\.encode_image .*no compiler here") as caught:
        first = model.score(videos, PROMPT).score
    assert len([w for w in caught if "torch.compile failed" in str(w.message)]) == 1  # one warning for both backbones
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = model.score(videos, PROMPT).score  # eager from now on: no warning, no new attempt
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert all(status.startswith("eager (BackendCompilerFailed") for status in model.compile_status.values())


def test_a_failure_when_wrapping_falls_back_too(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("Dynamo is not supported here")

    monkeypatch.setattr(torch, "compile", refuse)
    model = reward.load("dover-tiny", pretrained=False, technical_clip_len=4, technical_aligned=4, aesthetic_clip_len=4, aesthetic_t_frag=4)
    with pytest.warns(RuntimeWarning, match="Dynamo is not supported here"):
        model.compile()
    assert set(model.compile_status) == {"technical_backbone", "aesthetic_backbone"}
    assert all(status.startswith("eager (RuntimeError") for status in model.compile_status.values())
    assert model.score(_videos(1)).score.shape == (1,)


def test_input_errors_inside_a_compiled_backbone_are_not_compile_failures():
    model = reward.load("imagereward-tiny", pretrained=False).compile(backend="eager")
    with pytest.raises(RuntimeError), warnings.catch_warnings():
        warnings.simplefilter("error")
        model.scorer.blip.encode_image(torch.rand(1, 5, 32, 32))  # 5 channels: the eager error, no fallback warning
    assert set(model.compile_status.values()) == {COMPILED}


def test_compiled_reward_saves_the_eager_keys_and_round_trips(tmp_path):
    model = reward.load("aigc-vqa-tiny", pretrained=False)
    keys = list(model.state_dict())
    model.compile(backend="eager")
    videos = _videos()
    score = model.score(videos, PROMPT).score
    assert list(model.state_dict()) == keys and not any("_orig_mod" in key for key in keys)
    model.save_pretrained(tmp_path / "compiled")
    again = reward.load("aigc-vqa-tiny", weights=tmp_path / "compiled")
    assert list(again.state_dict()) == keys and again.compile_status == {}
    torch.testing.assert_close(again.score(videos, PROMPT).score, score, atol=1e-6, rtol=0)


def test_load_cli_and_recipes_pass_compile_through(monkeypatch):
    loaded = reward.load("pcqa-tiny", pretrained=False, compile={"backend": "eager"})
    assert loaded.compile_status == {"scorer.vision.model": COMPILED}
    assert reward.load("pcqa-tiny", pretrained=False).compile_status == {}  # never by default

    calls = []
    monkeypatch.setattr(cli, "load", lambda *args, **kwargs: calls.append(kwargs) or loaded)
    for command in (["score", "x.mp4"], ["explain", "x.mp4", "--out", "o"], ["bench"]):
        args = cli.build_parser().parse_args([*command, "--compile", "--random-weights"])
        cli._load_model(args, "cpu")
    assert [kwargs["compile"] for kwargs in calls] == [True, True, True]

    config = load_config("pcqa_tiny", ["model.compile={backend: eager}"])
    assert build_model(config.model).compile_status == {"scorer.vision.model": COMPILED}
    assert build_model(load_config("pcqa_tiny").model).compile_status == {}


def test_mixtures_and_ensembles_name_every_member_backbone():
    from reward.mixture import load_mixture

    mixture = load_mixture("imagereward-tiny:1,brightness:0.5", pretrained=False).compile(backend="eager")
    assert mixture.compile_status == {
        "imagereward-tiny/scorer.blip.encode_image": COMPILED, "imagereward-tiny/scorer.blip.encode_text": COMPILED,
    }
    assert reward.load("brightness").compile().compile_status == {}  # nothing to compile in a closed form
    ensemble = PCQAEnsemble(PCQAEnsembleConfig(members=[tiny_config(), tiny_config()])).compile(backend="eager")
    assert ensemble.compile_status == {"members.0.vision.model": COMPILED, "members.1.vision.model": COMPILED}
    assert OmegaConf.load(BASE_CONFIG).model.compile is False
