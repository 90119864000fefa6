"""examples/rerank.py: the --tiny run end to end in a subprocess, and its argument handling."""
from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.diffusers_support import one_thread  # noqa: F401  (autouse fixture)

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "examples" / "rerank.py"


def _example_module():
    spec = importlib.util.spec_from_file_location("rerank_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_rerank_writes_videos_table_and_contact_sheet(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE), "--tiny", "--prompt", "a red fox in snow", "--n", "4", "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert len(list((out / "videos").glob("*.mp4"))) == 4
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(int(row["rank"]) for row in rows) == [1, 2, 3, 4]
    assert all(row["prompt"] == "a red fox in snow" for row in rows)
    assert (out / "results.json").is_file() and (out / "contact_sheet_p000.png").is_file()
    assert "rank" in completed.stdout and "contact sheets:" in completed.stdout
    assert f"results page (open in a browser): {out / 'index.html'}" in completed.stdout
    assert (out / "index.html").read_text().count("<li class=\"candidate") == 4
    best = min(rows, key=lambda row: int(row["rank"]))
    assert best["file"] in completed.stdout


def test_prompts_come_from_flags_and_file(tmp_path):
    module = _example_module()
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("# animals\na cat\n\na dog\n")
    args = module.parse_args(["--prompt", "a fox", "--prompts-file", str(prompts_file), "--tiny"])
    assert args.prompt == ["a fox", "a cat", "a dog"]
    assert module.generation_kwargs(args)["num_inference_steps"] == 2
    real = module.parse_args(["--prompt", "a fox", "--frames", "33", "--steps", "30"])
    assert module.generation_kwargs(real) == {"num_inference_steps": 30, "num_frames": 33}
    assert real.model == module.DEFAULT_MODEL == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    with pytest.raises(SystemExit):
        module.parse_args(["--n", "2"])


def test_model_from_a_local_folder_loads_in_the_dtype_with_the_wan_vae_in_float32(tmp_path):
    import torch

    from integrations.diffusers import build_tiny_pipeline

    build_tiny_pipeline("wan").save_pretrained(tmp_path / "wan")
    module = _example_module()
    args = module.parse_args(["--prompt", "a fox", "--model", str(tmp_path / "wan"), "--dtype", "bfloat16", "--device", "cpu"])
    pipe = module.load_pipeline(args)
    assert type(pipe).__name__ == "WanPipeline"
    assert pipe.transformer.dtype == torch.bfloat16 and pipe.vae.dtype == torch.float32


def test_pruning_flags_report_the_saving(tmp_path, capsys):
    module = _example_module()
    argv = ["--tiny", "--prompt", "a red fox in snow", "--n", "4", "--steps", "3", "--top-k", "4",
            "--prune-step", "1", "--out", str(tmp_path), "--reward", "brightness"]
    assert module.main(argv) == 0
    printed = capsys.readouterr().out
    assert "early pruning stopped" in printed and "denoiser calls instead of 12" in printed


def test_a_generator_or_reward_that_cannot_load_ends_in_one_line_naming_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    module = _example_module()
    missing = tmp_path / "no-such-pipeline"
    assert module.main(["--prompt", "a fox", "--model", str(missing), "--device", "cpu", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("rerank.py: error: cannot load the generator") and str(missing) in error
    assert "--tiny" in error and "Traceback" not in error
    args = module.parse_args(["--prompt", "a fox", "--reward", "dover", "--device", "cpu"])
    with pytest.raises(module.SetupError, match="cannot load the reward: .*DOVER.pth"):
        module.load_reward(args)
