"""Scale-out: ``accelerate launch`` with 2 CPU processes merges to exactly what 1 process writes."""
from __future__ import annotations

import pytest
from scoring_videos import write_corrupt, write_mp4

from reward.cli import main
from reward.scoring import read_records
from tests.launch import REPO_ROOT, launch_two_processes


@pytest.mark.slow
def test_two_process_accelerate_run_equals_the_single_process_run(tmp_path, capsys):
    folder = tmp_path / "videos"
    for i in range(5):
        write_mp4(folder / f"{i}.mp4", seed=i, width=32 if i % 2 else 48)
    write_corrupt(folder / "5.mp4")
    options = ["--reward", "colorfulness", "--batch-size", "2", "--num-workers", "1", "--no-progress", "--device", "cpu"]

    assert main(["score", str(folder), "--out", str(tmp_path / "one.jsonl"), "--csv", str(tmp_path / "one.csv"), *options]) == 0
    capsys.readouterr()

    target = ["-m", "reward.cli", "score", str(folder), "--out", str(tmp_path / "two.jsonl"),
              "--csv", str(tmp_path / "two.csv"), *options]
    done = launch_two_processes(target, cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "videos: 6  scored: 5  failed: 1  processes: 2" in done.stdout
    assert done.stdout.count("videos: 6") == 1  # only rank 0 reports

    one = read_records(tmp_path / "one.jsonl")
    assert [r["id"] for r in one] == [str(folder / f"{i}.mp4") for i in range(6)]
    assert (tmp_path / "two.jsonl").read_text() == (tmp_path / "one.jsonl").read_text()
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "one.csv").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.csv", "one.jsonl", "two.csv", "two.jsonl", "videos"]
