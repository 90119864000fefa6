"""``aigc-reward ... --random-weights`` draws its weights from a fixed, documented seed (``--seed`` changes it):
two runs agree whatever the process drew from the global RNG before. That independence is what gives every
process of one ``accelerate launch`` the same weights (a two-process launch costs ~30 s, so it is not run here)."""
from __future__ import annotations

import pytest
import torch
from scoring_videos import write_mp4

from reward.cli import RANDOM_WEIGHTS_SEED, main
from reward.scoring import read_records

OPTIONS = ["--reward", "imagereward-tiny", "--random-weights", "--prompt", "a red fox", "--num-workers", "0",
           "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [write_mp4(folder / f"{i}.mp4", seed=i) for i in range(3)]


def _scores(videos, out, *extra: str) -> list[float]:
    assert main(["score", *map(str, videos), *OPTIONS, "--out", str(out), *extra]) == 0
    return [record["score"] for record in read_records(out)]


def test_two_runs_give_the_same_scores_whatever_the_global_rng_did(tmp_path, videos):
    torch.manual_seed(1)
    first = _scores(videos, tmp_path / "first.jsonl")
    torch.manual_seed(2)
    torch.rand(100)
    assert _scores(videos, tmp_path / "second.jsonl") == first
    assert len(set(first)) == len(first)  # the videos score apart: the comparison means something


def test_the_seed_option_changes_the_weights_and_defaults_to_the_documented_seed(tmp_path, videos):
    default = _scores(videos, tmp_path / "default.jsonl", "--seed", str(RANDOM_WEIGHTS_SEED))
    assert RANDOM_WEIGHTS_SEED == 0 and default == _scores(videos, tmp_path / "implicit.jsonl")
    other = _scores(videos, tmp_path / "other.jsonl", "--seed", "7")
    assert all(abs(a - b) > 1e-6 for a, b in zip(default, other))


def test_seed_without_random_weights_is_refused(capsys, videos):
    options = [o for o in OPTIONS if o != "--random-weights"]
    assert main(["score", str(videos[0]), *options, "--seed", "3"]) == 2
    assert "--seed sets the --random-weights initialisation: pass --random-weights too" in capsys.readouterr().err
