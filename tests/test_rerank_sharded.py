"""Best-of-N across processes: prompts split by index, per-rank state shards, rank 0 merges, resume."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from integrations.diffusers import build_tiny_pipeline, tiny_generation_kwargs
from integrations.diffusers.best_of_n import best_of_n, candidate_seed
from reward.scoring import Processes
from tests.diffusers_support import one_thread  # noqa: F401  (autouse fixture)
from tests.launch import REPO_ROOT, launch_two_processes

EXAMPLE = REPO_ROOT / "examples" / "rerank.py"
PROMPTS = ["a red fox in snow", "a blue car", "a green tree"]
GENERATION = dict(tiny_generation_kwargs("wan"), num_inference_steps=2)


class SimulatedRank(Processes):
    """Rank ``rank`` of a 2-process launch over ``PROMPTS``, played in this process: accelerate
    gives rank 0 prompts 0-1 and rank 1 prompt 2. Barriers return at once, except that the first
    one runs ``at_first_barrier`` (the other rank's whole run, in the order a launch allows)."""

    world = 2
    device = torch.device("cpu")

    def __init__(self, rank: int, at_first_barrier=None):
        super().__init__(state=None)
        self._rank, self.at_first_barrier = rank, at_first_barrier

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def is_main(self) -> bool:
        return self._rank == 0

    def barrier(self) -> None:
        if self.at_first_barrier is not None:
            run, self.at_first_barrier = self.at_first_barrier, None
            run()

    def shard(self, items):
        items = list(items)
        return items[:2] if self._rank == 0 else items[2:]


class CountingPipe:
    """Forwards to a pipeline, recording the seed of every video it makes; may fail on a given call."""

    def __init__(self, pipe, fail_on_call: int | None = None):
        self.pipe, self.fail_on_call = pipe, fail_on_call
        self.calls, self.seeds = 0, []

    def __call__(self, prompt, generator, **kwargs):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("simulated crash")
        self.seeds += [g.initial_seed() for g in generator]
        return self.pipe(prompt=prompt, generator=generator, **kwargs)


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pipeline("wan")


def _example_module():
    spec = importlib.util.spec_from_file_location("rerank_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(pipe, out, processes=None, **kwargs):
    return best_of_n(pipe, PROMPTS, "brightness", n=2, out_dir=out, progress=False, processes=processes,
                     **GENERATION, **kwargs)


def _table(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())["candidates"]


def _assert_same_tables(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for row, want in zip(got, expected):
        for key in ("prompt", "prompt_index", "candidate_index", "seed", "rank", "file", "pruned_at_step"):
            assert row[key] == want[key], key
        assert row["score"] == pytest.approx(want["score"], abs=1e-6)
        assert list(row["components"]) == list(want["components"])
        assert row["components"] == pytest.approx(want["components"], abs=1e-6)


def _shard_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("*shard*"))


def test_an_interrupted_shard_resumes_and_rank_0_merges_in_prompt_order(pipe, tmp_path):
    straight = _run(pipe, None)
    crashing = CountingPipe(pipe, fail_on_call=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(crashing, tmp_path, SimulatedRank(1))
    assert crashing.seeds == [candidate_seed(0, 2, 0)]  # rank 1 owns prompt 2; seeds keep the global index
    shard = json.loads((tmp_path / "state.shard1-of-2.json").read_text())
    assert list(shard["candidates"]) == ["2:0"] and (tmp_path / "videos" / "p002_c000_seed200000.mp4").is_file()

    rank1, rank1_results = CountingPipe(pipe), []
    rank0 = CountingPipe(pipe)
    relaunch = SimulatedRank(0, at_first_barrier=lambda: rank1_results.append(_run(rank1, tmp_path, SimulatedRank(1))))
    merged = _run(rank0, tmp_path, relaunch)
    assert rank1.seeds == [candidate_seed(0, 2, 1)] and rank1_results == [None]  # only rank 0 returns a result
    assert rank0.seeds == [candidate_seed(0, i, j) for i in (0, 1) for j in (0, 1)]
    assert merged.generated == 5 and _shard_files(tmp_path) == []
    assert [(c.prompt_index, c.rank, c.seed) for c in merged.candidates] == \
        [(c.prompt_index, c.rank, c.seed) for c in straight.candidates]
    assert [c.score for c in merged.candidates] == pytest.approx([c.score for c in straight.candidates], abs=1e-6)
    assert [p.name for p in merged.contact_sheets] == [f"contact_sheet_p{i:03d}.png" for i in range(3)]
    assert all(path.is_file() for path in merged.contact_sheets)
    assert [c.row(tmp_path) for c in merged.candidates] == _table(tmp_path)

    again = CountingPipe(pipe)
    resumed = _run(again, tmp_path)
    assert again.seeds == [] and resumed.generated == 0
    assert [c.row(tmp_path) for c in resumed.candidates] == _table(tmp_path)


def test_rank_0_names_a_folder_the_processes_do_not_share(pipe, tmp_path):
    with pytest.raises(RuntimeError, match="2 candidates made by other processes.*every process shares"):
        _run(pipe, tmp_path, SimulatedRank(0))
    with pytest.raises(ValueError, match="2 processes merges their results on disk: pass out_dir"):
        _run(pipe, None, SimulatedRank(0))


def test_a_crashed_shard_resumes_with_another_process_count_or_starts_over(pipe, tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(CountingPipe(pipe, fail_on_call=2), tmp_path, SimulatedRank(1))
    alone = CountingPipe(pipe)
    result = _run(alone, tmp_path)
    assert candidate_seed(0, 2, 0) not in alone.seeds and len(alone.seeds) == 5 and _shard_files(tmp_path) == []
    assert [c.rank for c in result.candidates] == [1, 2] * 3

    again = tmp_path / "again"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(CountingPipe(pipe, fail_on_call=2), again, SimulatedRank(1))
    fresh = CountingPipe(pipe)
    result = _run(fresh, again, resume=False)
    assert len(fresh.seeds) == 6 and result.generated == 6 and _shard_files(again) == []


def test_the_tiny_reward_is_the_same_in_every_process():
    module = _example_module()
    args = module.parse_args(["--tiny", "--prompt", "a fox", "--reward", "dover-tiny", "--device", "cpu"])
    first = module.load_reward(args)
    torch.manual_seed(1234)  # another process arrives with another global random state
    second = module.load_reward(args)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


@pytest.mark.slow
def test_two_process_launch_equals_one_process_and_resumes_a_partial_run(tmp_path, capsys):
    module = _example_module()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    options = ["--tiny", "--prompts-file", str(prompts), "--reward", "dover-tiny", "--top-k", "2"]
    assert module.main([*options, "--n", "2", "--out", str(tmp_path / "one")]) == 0
    assert module.main([*options, "--n", "1", "--out", str(tmp_path / "two")]) == 0  # the partial run
    capsys.readouterr()
    partial_videos = {p: p.stat().st_mtime_ns for p in (tmp_path / "two" / "videos").iterdir()}
    assert len(partial_videos) == 3

    target = [str(EXAMPLE), *options, "--n", "2", "--out", str(tmp_path / "two")]
    done = launch_two_processes(target, cwd=tmp_path, timeout=600, OMP_NUM_THREADS="1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "processes: 2" in done.stdout
    assert done.stdout.count("prompt 0:") == 1 and done.stdout.count("contact sheets:") == 1  # printed by rank 0 only
    assert "6 candidates (3 generated now)" in done.stdout

    one, two = tmp_path / "one", tmp_path / "two"
    _assert_same_tables(_table(two), _table(one))
    assert {p: p.stat().st_mtime_ns for p in partial_videos} == partial_videos  # nothing done is made again
    assert sorted(p.name for p in (two / "videos").iterdir()) == sorted(p.name for p in (one / "videos").iterdir())
    assert sorted(p.name for p in two.glob("contact_sheet_*.png")) == [f"contact_sheet_p{i:03d}.png" for i in range(3)]
    assert _shard_files(two) == []
    assert (two / "index.html").read_text().count("<li class=\"candidate") == 6  # rank 0's page shows every process's videos
    with open(two / "results.csv") as handle, open(one / "results.csv") as expected:
        assert handle.readline() == expected.readline()  # same columns, in the reward's component order
