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
    assert report["threads"] == torch.get_num_threads()
    rows = report["results"]
    assert [(r["dtype"], r["checkpointing"], r["compiled"]) for r in rows] == [
        ("fp32", False, False), ("bf16", False, False), ("fp32", True, False), ("bf16", True, False)
    ]
    for row in rows:
        times = [row[k] for k in ("forward_s", "forward_cpu_s", "forward_backward_s", "forward_backward_cpu_s")]
        assert all(math.isfinite(t) and t > 0 for t in times)
        for key in ("forward_backward_peak_bytes", "forward_peak_bytes"):
            assert isinstance(row[key], int) and row[key] >= 0
        assert 0 < row["forward_flops"] < row["forward_backward_flops"]
        for key in ("forward_gflops", "forward_matmul_percent", "forward_matmul_percent_cpu",
                    "forward_backward_gflops", "forward_backward_matmul_percent", "forward_backward_matmul_percent_cpu"):
            assert math.isfinite(row[key]) and row[key] > 0
    plain, checkpointed = rows[0], rows[2]
    assert rows[1]["forward_flops"] == plain["forward_flops"] == checkpointed["forward_flops"]  # same arithmetic
    assert checkpointed["forward_backward_flops"] > plain["forward_backward_flops"]  # the recomputed forward
    assert [m["dtype"] for m in report["matmul"]] == ["fp32", "bf16"] and all(m["gflops"] > 0 for m in report["matmul"])
    expected = rows[0]["forward_backward_cpu_s"] / rows[1]["forward_backward_cpu_s"]
    assert report["bf16_speedup"] == pytest.approx(expected)
    efficiency = rows[0]["forward_gflops"] / report["matmul"][0]["gflops"] * 100
    assert rows[0]["forward_matmul_percent"] == pytest.approx(efficiency)


def test_cli_bench_table_names_the_configurations_and_the_speedup(capsys):
    assert main(["bench", *TINY]) == 0
    out = capsys.readouterr().out
    assert "aigc-vqa-tiny on cpu: 1 x 2 frames at 32x32" in out
    assert "fp32" in out and "bf16" in out and "bf16 vs fp32, forward+backward:" in out
    assert "fwd GFLOP/s" in out and "fwd %mm" in out and "matrix product: fp32 2048x2048" in out


def test_cli_bench_stores_weights_in_bf16_on_request(capsys):
    assert main(["bench", *TINY, "--weights-dtype", "bf16", "--dtypes", "bf16", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert row["dtype"] == "bf16" and row["forward_flops"] > 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--reward", "no-such-reward"], "unknown reward 'no-such-reward'"),
        ([*TINY, "--frames", "0"], "--frames must be at least 1"),
        ([*TINY, "--weights-dtype", "bf16"], "--weights-dtype bf16 computes in bf16: pass --dtypes bf16"),
    ],
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


def test_flop_counts_are_two_per_multiply_add_including_the_cpu_fused_attention():
    linear = torch.nn.Linear(64, 32)
    assert bench.count_flops(lambda: linear(torch.randn(10, 64))) == 2 * 10 * 64 * 32
    q, k, v = (torch.randn(2, 3, 50, 16, requires_grad=True) for _ in range(3))
    forward = 2 * (2 * 2 * 3 * 50 * 50 * 16)  # q @ k^T and p @ v
    assert bench.count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q.detach(), k.detach(), v.detach())) == forward
    both = bench.count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v).sum().backward())
    assert both == forward + 5 * forward // 2  # the backward recomputes q @ k^T and runs four more products


def test_matmul_rate_is_measured_in_the_asked_dtype():
    rate = bench.matmul_rate("bf16", torch.device("cpu"), n=256, iterations=1)
    assert (rate.dtype, rate.n) == ("bf16", 256) and rate.gflops > 0 and rate.cpu_gflops > 0


def test_compiled_mode_runs_the_rewards_own_compile():
    model = reward.load("aigc-vqa-tiny", pretrained=False)
    calls = []
    model.compile = lambda **options: calls.append(options) or model  # the Inductor path is tested in test_compile.py
    rows = bench.bench_configurations(lambda: model, dtypes=("fp32",), modes=("compiled",), frames=4, size=32, iterations=1)
    assert calls == [{}] and [row.compiled for row in rows] == [True]


def test_report_text_says_when_the_cpu_has_no_amx():
    rows = [bench.BenchResult("fp32", False, 1.0, 1.0, 4.0, 4.0, 10), bench.BenchResult("bf16", False, 1.0, 1.0, 2.0, 8.0, 5)]
    report = bench.BenchReport("r", "cpu", 1, 2, 32, False, tuple(rows))
    assert report.bf16_speedup() == 0.5  # CPU time on the CPU
    assert "no AMX usable by torch" in report.text() and "forward+backward: 0.50x, forward: 1.00x (CPU time)" in report.text()
    on_gpu = bench.BenchReport("r", "cuda:0", 1, 2, 32, None, tuple(rows))
    assert on_gpu.bf16_speedup() == 2.0 and "AMX" not in on_gpu.text()
