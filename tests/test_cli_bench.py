"""reward.bench and `aigc-reward bench`: timings and peak memory of a reward per compute dtype."""
from __future__ import annotations

import json
import math

import pytest
import torch

import reward
from reward import bench
from reward.cli import main

TINY = ["--reward", "aigc-vqa-tiny", "--random-weights", "--frames", "2", "--size", "32", "--iterations", "1"]


def test_cli_bench_reports_every_dtype_and_checkpointing_as_json(capsys):
    assert main(["bench", *TINY, "--checkpointing", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reward"] == "aigc-vqa-tiny" and report["device"] == "cpu" and report["frames"] == 2
    rows = report["results"]
    assert [(r["dtype"], r["checkpointing"]) for r in rows] == [("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True)]
    for row in rows:
        times = [row[k] for k in ("forward_s", "forward_cpu_s", "forward_backward_s", "forward_backward_cpu_s")]
        assert all(math.isfinite(t) and t > 0 for t in times)
        assert isinstance(row["forward_backward_peak_bytes"], int) and row["forward_backward_peak_bytes"] >= 0
    expected = rows[0]["forward_backward_cpu_s"] / rows[1]["forward_backward_cpu_s"]
    assert report["bf16_speedup"] == pytest.approx(expected)


def test_cli_bench_table_names_the_configurations_and_the_speedup(capsys):
    assert main(["bench", *TINY]) == 0
    out = capsys.readouterr().out
    assert "aigc-vqa-tiny on cpu: 1 x 2 frames at 32x32" in out
    assert "fp32" in out and "bf16" in out and "bf16 vs fp32, forward+backward:" in out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--reward", "no-such-reward"], "unknown reward 'no-such-reward'"), ([*TINY, "--frames", "0"], "--frames must be at least 1")],
)
def test_cli_bench_bad_arguments_exit_2_with_the_fix(capsys, arguments, message):
    assert main(["bench", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_bench_reward_restores_the_models_dtype_and_checkpointing_and_works_without_parameters():
    model = reward.load("aigc-vqa-tiny", pretrained=False)
    result = bench.bench_reward(model, frames=2, size=32, iterations=1, dtype="bf16", checkpointing=True)
    assert (result.dtype, result.checkpointing) == ("bf16", True)
    assert model.compute_dtype is None and not model.gradient_checkpointing
    colourful = bench.bench_reward(reward.load("colorfulness"), frames=2, size=16, iterations=2)
    assert colourful.dtype == "fp32" and colourful.forward_backward_cpu_s >= 0
    with pytest.raises(ValueError, match="iterations"):
        bench.bench_reward(model, iterations=0)


@pytest.mark.skipif(bench.start_peak(torch.device("cpu")) is None, reason="peak memory is read from Linux /proc only")
def test_peak_memory_meter_sees_a_64_mib_allocation():
    base = bench.start_peak(torch.device("cpu"))
    block = torch.ones(16 * 2**20)  # 64 MiB of float32, touched
    grown = bench.peak_growth(torch.device("cpu"), base)
    del block
    assert 60 * 2**20 <= grown < 200 * 2**20


def test_report_text_says_when_the_cpu_has_no_amx():
    rows = [bench.BenchResult("fp32", False, 1.0, 1.0, 4.0, 4.0, 10), bench.BenchResult("bf16", False, 1.0, 1.0, 2.0, 8.0, 5)]
    report = bench.BenchReport("r", "cpu", 1, 2, 32, False, tuple(rows))
    assert report.bf16_speedup() == 0.5  # CPU time on the CPU
    assert "no AMX usable by torch" in report.text() and "0.50x (CPU time)" in report.text()
    on_gpu = bench.BenchReport("r", "cuda:0", 1, 2, 32, None, tuple(rows))
    assert on_gpu.bf16_speedup() == 2.0 and "AMX" not in on_gpu.text()
