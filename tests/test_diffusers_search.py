"""Inference-time search on tiny offline pipelines: lineage regeneration, exact budgets, greedy resampling,
resume, failing rewards, unsupported pipelines, best-of-N's outputs and process sharding."""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
import math
import os
import subprocess
import sys

import pytest
import torch

from integrations.diffusers import TINY_FAMILIES, build_tiny_pipeline, tiny_generation_kwargs
from integrations.diffusers.best_of_n import best_of_n
from integrations.diffusers.lineage import Lineage
from integrations.diffusers.resampling import resampling_weights, systematic_resample
from integrations.diffusers.sampler import UnsupportedSearchError, regenerate
from integrations.diffusers.search import search
from integrations.diffusers.search_strategies import BestOfN, EarlyPruningSearch, NoiseSearch, Resample
from reward.simple import StatisticReward, SimpleConfig
from tests.diffusers_support import one_thread  # noqa: F401  (autouse fixture)
from tests.launch import REPO_ROOT, launch_two_processes
from tests.test_rerank_sharded import SimulatedRank

FAMILY = "wan"
STEPS = 4
GENERATION = dict(tiny_generation_kwargs(FAMILY), num_inference_steps=STEPS, guidance_scale=1.0)
PROMPTS = ["a red fox in snow", "a blue car"]
STRATEGIES = {
    "best-of-n": BestOfN(),
    "early-pruning": EarlyPruningSearch(step=1, keep=1),
    "resample": Resample(temperature=0.5, renoise=0.5, at_steps=(1, 2)),
    "noise-search": NoiseSearch(first_round=2, per_round=1),
}


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pipeline(FAMILY)


class DenoiserCounter:
    """Counts the samples the denoiser sees (CFG off, so one per call); may fail after ``fail_after`` calls."""

    def __init__(self, pipe, fail_after: int | None = None):
        self.calls, self.fail_after = 0, fail_after
        self.handle = pipe.transformer.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.calls += kwargs["hidden_states"].shape[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _run(pipe, strategy, budget=4 * STEPS, **kwargs):
    arguments = dict(GENERATION, progress=False, seed=3)
    arguments.update(kwargs)
    return search(pipe, PROMPTS, "colorfulness", strategy=strategy, budget=budget, **arguments)


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_kept_video_regenerates_bit_for_bit_from_its_lineage(pipe, name):
    result = _run(pipe, STRATEGIES[name])
    finished = [c for c in result.candidates if c.finished]
    assert finished and all(c.video is not None for c in finished)
    for candidate in finished:
        assert torch.equal(regenerate(pipe, candidate.prompt, candidate.lineage.as_dict(), **GENERATION), candidate.video)
    if name == "resample":
        assert any(event.seed is not None for c in finished for event in c.lineage.resampled)
    if name == "noise-search":
        assert any(c.lineage.moves for c in finished)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_resampling_runs_on_every_tiny_family_and_regenerates(family):
    """The search's loop makes the pipeline's own video from a seed; resampling runs and regenerates."""
    pipe = build_tiny_pipeline(family)
    generation = dict(tiny_generation_kwargs(family), num_inference_steps=2)
    own = pipe(PROMPTS[0], generator=torch.Generator().manual_seed(5), output_type="pt", **generation).frames[0]
    assert torch.allclose(regenerate(pipe, PROMPTS[0], Lineage(5), **generation), own, atol=1e-5)
    result = search(pipe, PROMPTS[0], "colorfulness", strategy=Resample(temperature=0, at_steps=(1,)), budget=4,
                    progress=False, **generation)
    duplicate = next(c for c in result.candidates if c.lineage.resampled[0].seed is not None)
    assert torch.equal(regenerate(pipe, duplicate.prompt, duplicate.lineage, **generation), duplicate.video)
    assert result.spend[0].denoiser_calls == 4


@pytest.mark.parametrize("name", STRATEGIES)
def test_budgets_are_respected_exactly(pipe, name):
    budget = 5 * STEPS + 3
    with DenoiserCounter(pipe) as counter:
        result = _run(pipe, STRATEGIES[name], budget=budget)
    spent = [result.spend[i].denoiser_calls for i in range(len(PROMPTS))]
    assert counter.calls == sum(spent)
    if name == "early-pruning":  # whole videos while one still fits, stopped ones cost step + 1
        for i, calls in enumerate(spent):
            made = result.for_prompt(i)
            assert calls == sum(STEPS if c.finished else 2 for c in made) and budget - STEPS < calls <= budget
    else:
        assert spent == [5 * STEPS] * len(PROMPTS)


def test_the_scheduler_guidance_pair_counts_as_one_call(pipe):
    with DenoiserCounter(pipe) as counter:
        result = _run(pipe, "best-of-n", budget=2 * STEPS, guidance_scale=5.0)
    assert counter.calls == 2 * result.spend[0].denoiser_calls * len(PROMPTS) == 2 * 2 * STEPS * len(PROMPTS)


def test_temperature_zero_resampling_is_greedy_selection(pipe):
    weights = resampling_weights([0.1, 0.7, None, 0.7, 0.2], 0)
    assert weights.tolist() == [0, 1, 0, 0, 0]
    assert systematic_resample(weights, 0.93) == [1] * 5
    result = _run(pipe, Resample(temperature=0, at_steps=(1, 2, 3)), budget=5 * STEPS)
    for i, trace in result.traces.items():
        assert len(trace["rounds"]) == 3
        greedy = [max(range(5), key=lambda j: resampling["previews"][j]) for resampling in trace["rounds"]]
        assert [resampling["ancestors"] for resampling in trace["rounds"]] == [[best] * 5 for best in greedy]
        for candidate in result.for_prompt(i):  # every video descends from each round's best; copies 2.. renoised
            assert [event.parent for event in candidate.lineage.resampled] == greedy
            assert (candidate.lineage.resampled[-1].seed is None) == (candidate.candidate_index == 0)


def test_infinite_temperature_keeps_every_particle_and_equals_best_of_n(pipe):
    plain = _run(pipe, "best-of-n")
    kept = _run(pipe, Resample(temperature=math.inf, at_steps=(1, 2)))
    assert all(trace["rounds"][0]["ancestors"] == [0, 1, 2, 3] for trace in kept.traces.values())
    pairs = zip(sorted(plain.candidates, key=lambda c: c.seed), sorted(kept.candidates, key=lambda c: c.seed))
    assert all(torch.equal(a.video, b.video) and a.score == b.score for a, b in pairs)


def test_systematic_resampling_gives_each_particle_floor_or_ceil_of_its_share():
    weights = torch.tensor([0.05, 0.4, 0.3, 0.25], dtype=torch.float64)
    for offset in (0.0, 0.3, 0.99):
        ancestors = systematic_resample(weights, offset)
        assert ancestors == sorted(ancestors)
        for j, w in enumerate(weights.tolist()):
            assert math.floor(4 * w) <= ancestors.count(j) <= math.ceil(4 * w)
    soft = resampling_weights([1.0, 2.0, float("nan"), 3.0], 1.0)
    assert soft[2] == 0 and soft[3] > soft[1] > soft[0] and float(soft.sum()) == pytest.approx(1)
    assert resampling_weights([5.0, 1.0], 1.0, higher_is_better=False)[1] > 0.5
    assert resampling_weights([None, None], 1.0).tolist() == [0.5, 0.5]


@pytest.mark.parametrize("name", ["noise-search", "resample", "early-pruning"])
def test_an_interrupted_search_resumes_to_the_same_results(pipe, tmp_path, name):
    strategy = STRATEGIES[name]
    straight = _run(pipe, strategy, out_dir=tmp_path / "straight")
    with DenoiserCounter(pipe, fail_after=6 * STEPS) as counter, pytest.raises(RuntimeError, match="simulated crash"):
        _run(pipe, strategy, out_dir=tmp_path / "resumed")
    with DenoiserCounter(pipe) as counter:
        resumed = _run(pipe, strategy, out_dir=tmp_path / "resumed")
    table = json.loads((tmp_path / "resumed" / "results.json").read_text())["candidates"]
    expected = json.loads((tmp_path / "straight" / "results.json").read_text())["candidates"]
    assert table == expected
    assert resumed.spend == straight.spend and resumed.traces == straight.traces
    total = sum(spend.denoiser_calls for spend in straight.spend.values())
    assert counter.calls < total if name != "resample" else counter.calls == total - 4 * STEPS  # prompt 0 was done
    again = _run(pipe, strategy, out_dir=tmp_path / "resumed")
    assert again.generated == 0


class FailsOnOneVideo(StatisticReward):
    """Colorfulness that raises on any batch holding a video of a given colorfulness (one candidate)."""

    def __init__(self, poison: float):
        super().__init__(SimpleConfig("colorfulness"))
        self.poison = poison

    def _forward(self, videos, prompts):
        out = super()._forward(videos, prompts)
        if any(abs(float(s) - self.poison) < 1e-6 for s in out.score):
            raise ValueError("this video breaks the reward")
        return out


def test_a_failing_reward_fails_one_candidate_not_the_search(pipe, tmp_path):
    clean = _run(pipe, "best-of-n", batch_size=2)
    victim = clean.for_prompt(0)[0]
    result = search(
        pipe, PROMPTS, FailsOnOneVideo(victim.score), strategy="best-of-n", budget=4 * STEPS, batch_size=2,
        out_dir=tmp_path, progress=False, seed=3, **GENERATION,
    )
    failed = [c for c in result.candidates if c.error]
    assert [(c.prompt_index, c.seed) for c in failed] == [(0, victim.seed)]
    assert "breaks the reward" in failed[0].error and failed[0].rank == 4 and failed[0].file.is_file()
    others = {(c.prompt_index, c.seed): c.score for c in clean.candidates}
    assert all(c.score == pytest.approx(others[(c.prompt_index, c.seed)]) for c in result.candidates if not c.error)
    rows = json.loads(result.table_json.read_text())["candidates"]
    assert [row["score"] for row in rows if row["error"]] == [None]
    assert result.best[0].seed != victim.seed


def test_unsearchable_pipelines_and_bad_settings_say_what_to_do(pipe):
    from diffusers import EulerDiscreteScheduler

    with pytest.raises(UnsupportedSearchError, match="WanPipeline.*TextToVideoSDPipeline|TextToVideoSDPipeline.*WanPipeline"):
        search(object(), PROMPTS, "colorfulness", budget=8, progress=False)
    legacy = build_tiny_pipeline("text-to-video-sd")
    legacy.scheduler = EulerDiscreteScheduler.from_config(legacy.scheduler.config)
    with pytest.raises(UnsupportedSearchError, match="DDIMScheduler.from_config"):
        search(legacy, PROMPTS, "colorfulness", budget=8, progress=False, **tiny_generation_kwargs("text-to-video-sd"))
    cases = [
        (dict(budget=STEPS - 1), "cannot finish one 4-step video"),
        (dict(strategy="beam"), "unknown search strategy"),
        (dict(output_type="latent"), "does not take the pipeline argument"),
        (dict(strategy=Resample(at_steps=(4,))), "outside 1 .. 3"),
        (dict(strategy=Resample(particles=9)), "need 36 denoiser calls"),
        (dict(strategy=EarlyPruningSearch(step=4)), "below num_inference_steps"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            _run(pipe, **{"strategy": "resample", **kwargs})


def test_outputs_are_best_of_ns_with_lineage(pipe, tmp_path):
    result = _run(pipe, "best-of-n", out_dir=tmp_path, save_tensors=True)
    plain = best_of_n(pipe, PROMPTS, "colorfulness", n=4, seed=3, progress=False, **GENERATION)
    assert [(c.prompt_index, c.seed, c.rank) for c in result.candidates] == [(c.prompt_index, c.seed, c.rank) for c in plain.candidates]
    assert [c.score for c in result.candidates] == pytest.approx([c.score for c in plain.candidates], abs=1e-4)
    table = json.loads(result.table_json.read_text())
    assert table["search"]["strategy"] == "best-of-n" and table["search"]["budget"] == 4 * STEPS
    assert [row["prompt_index"] for row in table["spend"]] == [0, 1]
    bon_row = plain.candidates[0].row(None)
    assert set(bon_row) <= set(table["candidates"][0]) and Lineage.from_dict(table["candidates"][0]["lineage"])
    with open(result.table_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and json.loads(rows[0]["lineage"])["seed"] == int(rows[0]["seed"])
    assert [p.name for p in result.contact_sheets] == ["contact_sheet_p000.png", "contact_sheet_p001.png"]
    page = result.gallery.read_text()
    assert result.gallery == tmp_path / "index.html" and "best-of-n search" in page
    assert all(f'href="videos/{Path(row["file"]).name}"' in page for row in table["candidates"])
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == len(list((tmp_path / "videos").glob("*.safetensors"))) == 8
    with pytest.raises(ValueError, match="search.*resume=False"):
        _run(pipe, "noise-search", out_dir=tmp_path)


def test_prompts_split_across_processes_as_best_of_n_does(pipe, tmp_path):
    prompts = ["a red fox in snow", "a blue car", "a green tree"]
    arguments = dict(GENERATION, strategy=STRATEGIES["resample"], budget=3 * STEPS, progress=False, seed=3)
    one = search(pipe, prompts, "colorfulness", out_dir=tmp_path / "one", **arguments)
    rank1 = lambda: search(pipe, prompts, "colorfulness", out_dir=tmp_path / "two", processes=SimulatedRank(1), **arguments)
    merged = search(pipe, prompts, "colorfulness", out_dir=tmp_path / "two", processes=SimulatedRank(0, rank1), **arguments)
    assert [c.row(tmp_path / "one") for c in one.candidates] == [c.row(tmp_path / "two") for c in merged.candidates]
    assert merged.spend == one.spend and merged.traces == one.traces
    assert json.loads((tmp_path / "two" / "results.json").read_text())["candidates"] == json.loads(
        (tmp_path / "one" / "results.json").read_text())["candidates"]
    assert sorted(p.name for p in (tmp_path / "two").glob("*shard*")) == []


def test_search_example_runs_each_strategy_from_its_flags(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("search_example", REPO_ROOT / "examples" / "search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flags = ["--tiny", "--prompt", "a red fox in snow", "--reward", "colorfulness", "--steps", "2", "--top-k", "2"]
    assert module.main([*flags, "--strategy", "noise-search", "--n", "3", "--first-round", "1", "--radius", "0.2",
                        "--out", str(tmp_path / "noise")]) == 0
    printed = capsys.readouterr().out
    assert "prompt 0: 6 of 6 denoiser calls, 3 reward calls" in printed and "rank" in printed
    table = json.loads((tmp_path / "noise" / "results.json").read_text())
    assert table["search"]["options"] == {"first_round": 1, "per_round": 2, "radius": 0.2, "shrink": 0.7}
    assert module.main([*flags, "--strategy", "resample", "--budget", "6", "--resample-at", "1", "--temperature", "0",
                        "--out", str(tmp_path / "resample")]) == 0
    assert "prompt 0: 6 of 6 denoiser calls, 6 reward calls" in capsys.readouterr().out
    assert module.main([*flags, "--strategy", "resample", "--budget", "6", "--resample-at", "2", "--out", str(tmp_path)]) == 2
    assert "outside 1 .. 1" in capsys.readouterr().err


@pytest.mark.slow
def test_search_example_under_a_two_process_launch_equals_one_process(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox in snow\na blue car\na green tree\n")
    options = [str(REPO_ROOT / "examples" / "search.py"), "--tiny", "--prompts-file", str(prompts), "--reward", "colorfulness",
               "--steps", "2", "--strategy", "resample", "--budget", "6"]
    launched = launch_two_processes([*options, "--out", str(tmp_path / "two")], cwd=tmp_path, timeout=600, OMP_NUM_THREADS="1")
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert "processes: 2" in launched.stdout and launched.stdout.count("contact sheets:") == 1
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO_ROOT))
    single = subprocess.run([sys.executable, *options, "--out", str(tmp_path / "one")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    one, two = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("one", "two"))
    assert one["candidates"] == two["candidates"] and one["spend"] == two["spend"] and one["traces"] == two["traces"]

