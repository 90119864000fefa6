"""benchmarks/gpu_check.py: its dry run on the CPU, its report logic, its time caps, and what it needs on the
GPU machine (no PyAV, imageio-ffmpeg or trl there)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _row(reward, mode, batch, dtype, checkpointing=False, fwd=1.0, fwd_bwd=2.0, peak=100, flops=10**12):
    return dict(reward=reward, mode=mode, batch=batch, dtype=dtype, checkpointing=checkpointing, forward_s=fwd,
                forward_backward_s=fwd_bwd, forward_backward_peak_bytes=peak, forward_flops=flops,
                forward_backward_flops=2 * flops)


def test_targets_are_judged_from_the_rows():
    gpu_check = _gpu_check()
    plan = gpu_check.GPU_PLAN
    rows = [
        _row("aigc-vqa", "eager", 8, "fp32", fwd_bwd=3.0, peak=1000),
        _row("aigc-vqa", "eager", 8, "bf16", fwd=0.01, fwd_bwd=1.0, peak=1000),  # 100 TFLOP/s: 50% of a 200 peak
        _row("aigc-vqa", "eager", 8, "bf16", checkpointing=True, peak=500),
        _row("aigc-vqa", "compiled", 8, "bf16", fwd=0.02),
        {**_row("dover", "eager", 8, "fp32"), "error": "out of memory: ..."},
        _row("dover", "eager", 8, "bf16"),
    ]
    lines = gpu_check.targets(rows, 200.0, plan)
    assert "aigc-vqa bf16 forward at batch 8: 50.0% of the bf16 matmul rate (eager; target >= 40%): met" in lines[0]
    assert any("aigc-vqa batch 8: bf16 forward+backward speed-up over fp32 3.00x (target >= 2x): met" in line for line in lines)
    assert any("aigc-vqa bf16 batch 8: checkpointing cuts forward+backward peak memory by 50%" in line for line in lines)
    assert not any(line.startswith("- dover batch 8") for line in lines)  # the failed fp32 row is not compared
    table = gpu_check.bench_table(rows, 200.0)
    assert "| aigc-vqa | eager | 8 | bf16 | no | 10.0 | 50.0% |" in table and "out of memory" in table
    assert gpu_check.targets([], None, plan)[0].endswith("not measured")


def test_a_step_is_cut_at_its_cap(tmp_path):
    status, seconds = _gpu_check().run_capped([sys.executable, "-c", "import time; time.sleep(60)"], 2, tmp_path / "log")
    assert status == "cut at its 2 s cap" and seconds < 30


def test_the_checked_code_needs_no_video_decoder_or_trl():
    """The GPU machine has no PyAV, imageio-ffmpeg or trl: everything the check imports must load without them."""
    code = (
        "import sys\n"
        "for name in ('av', 'imageio_ffmpeg', 'trl'):\n"
        "    sys.modules[name] = None\n"
        "import reward, reward.dover.presets, reward.aigcvqa.presets, reward.imagereward.presets, reward.pcqa.presets\n"
        "import integrations.diffusers.best_of_n, integrations.finetune.backprop, integrations.finetune.ddpo\n"
        "reward.load('dover-tiny', pretrained=False)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_dry_run_exercises_every_step(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--out", str(out)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=3600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "gpu_check.json").read_text())
    rewards = ("aigc-vqa", "dover", "pcqa-convnext-s")
    assert [s["step"] for s in summary["steps"]] == [
        "tests", "matmul", *(f"eager {r}" for r in rewards), *(f"compiled {r}" for r in ("dover", "pcqa-convnext-s", "aigc-vqa"))
    ]
    assert all(step["status"] == "done" for step in summary["steps"]), summary["steps"]
    assert summary["tests"] and set(summary["tests"].values()) == {"SKIPPED"}  # collected; no GPU here
    assert summary["matmul"]["tflops"] > 0
    rows = summary["bench"]
    assert not [row for row in rows if "error" in row]
    for name in rewards:
        eager = [r for r in rows if r["reward"] == name and r["mode"] == "eager"]
        assert {(r["batch"], r["dtype"], r["checkpointing"]) for r in eager} == {
            (1, "fp32", False), (1, "bf16", False), (2, "fp32", False), (2, "bf16", False), (2, "fp32", True), (2, "bf16", True)
        }
        (compiled,) = [r for r in rows if r["reward"] == name and r["mode"] == "compiled"]
        assert set(compiled["compile_status"].values()) == {"compiled"}
        assert all(r["forward_flops"] > 0 and r["forward_backward_flops"] > r["forward_flops"] for r in eager)
    report = (out / "gpu_check.md").read_text()
    assert "## Targets (reported, not asserted)" in report and "bf16 forward+backward speed-up" in report
    assert "checkpointing cuts forward+backward peak memory" in report
