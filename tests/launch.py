"""Run a script under ``accelerate launch`` as two CPU processes (for the scale-out tests)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# accelerate 1.15 runs `--cpu --num_processes 2` as ONE process unless mpirun is configured
# (huggingface/accelerate#2741); --multi_gpu starts 2 processes via torch.distributed.run, and
# with CUDA hidden they join a gloo group on the CPU.
TWO_CPU_PROCESSES = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                     "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]


def launch_two_processes(
    target: list[str], *, cwd: Path, timeout: float, **env: str
) -> subprocess.CompletedProcess[str]:
    """``target`` (a script path or ``-m module``, then its arguments) on 2 CPU processes, offline, with
    this repo importable; ``env`` adds variables. Returns the finished run with its text output."""
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    environment = dict(os.environ, PYTHONPATH=python_path, HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="", **env)
    command = [sys.executable, *TWO_CPU_PROCESSES, *target]
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)
