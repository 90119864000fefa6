"""Scale-out: ``accelerate launch`` with 2 CPU processes merges to exactly what 1 process writes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from scoring_videos import write_corrupt, write_mp4

from reward.cli import main
from reward.scoring import read_records

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_process_accelerate_run_equals_the_single_process_run(tmp_path, capsys):
    folder = tmp_path / "videos"
    for i in range(5):
        write_mp4(folder / f"{i}.mp4", seed=i, width=32 if i % 2 else 48)
    write_corrupt(folder / "5.mp4")
    options = ["--reward", "colorfulness", "--batch-size", "2", "--num-workers", "1", "--no-progress", "--device", "cpu"]

    assert main(["score", str(folder), "--out", str(tmp_path / "one.jsonl"), "--csv", str(tmp_path / "one.csv"), *options]) == 0
    capsys.readouterr()

    # accelerate 1.15 runs `--cpu --num_processes 2` as ONE process unless mpirun is configured
    # (huggingface/accelerate#2741); --multi_gpu starts 2 processes via torch.distributed.run,
    # and on a machine without CUDA they join a gloo group on the CPU.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=python_path, HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    command = [*launch, "-m", "reward.cli", "score", str(folder), "--out", str(tmp_path / "two.jsonl"),
               "--csv", str(tmp_path / "two.csv"), *options]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "videos: 6  scored: 5  failed: 1  processes: 2" in done.stdout
    assert done.stdout.count("videos: 6") == 1  # only rank 0 reports

    one = read_records(tmp_path / "one.jsonl")
    assert [r["id"] for r in one] == [str(folder / f"{i}.mp4") for i in range(6)]
    assert (tmp_path / "two.jsonl").read_text() == (tmp_path / "one.jsonl").read_text()
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "one.csv").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.csv", "one.jsonl", "two.csv", "two.jsonl", "videos"]
