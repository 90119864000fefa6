"""Run folders: resumable training checkpoints (accelerate state + our progress) and native model exports.

Every folder is written under a hidden temporary name and renamed into place when complete, so
a crash or a kill never leaves a half-written checkpoint under a real name.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate import Accelerator

from reward.checkpoints import atomic_write_text

CHECKPOINTS = "checkpoints"
STATE_NAME = "trainer_state.json"
PREFIX = "step_"


@dataclass
class TrainerState:
    """Where training stands: enough, with accelerate's state, to resume exactly."""

    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of this epoch already consumed (per process)
    global_step: int = 0  # optimizer steps
    best_metric: float | None = None
    best_step: int | None = None
    log_rows: dict[str, int] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        atomic_write_text(folder / STATE_NAME, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> "TrainerState":
        return cls(**json.loads((folder / STATE_NAME).read_text()))


def replace_dir(source: Path, target: Path) -> None:
    """Move the finished folder ``source`` onto ``target``, replacing an older ``target``."""
    if target.exists():
        retired = target.with_name(f".{target.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(target, retired)
        os.replace(source, target)
        shutil.rmtree(retired)
    else:
        os.replace(source, target)


def write_dir_atomically(target: Path, fill: Callable[[Path], None]) -> Path:
    """Create ``target`` by filling a hidden temporary folder beside it, then renaming it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    fill(staging)
    replace_dir(staging, target)
    return target


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    folder = Path(output_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.name.startswith(PREFIX) and (p / STATE_NAME).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def save_checkpoint(accelerator: Accelerator, output_dir: str | Path, state: TrainerState, *, keep: int) -> Path:
    """Save model, optimizer, scheduler, RNG states and ``state``; keep the newest ``keep`` checkpoints."""
    target = Path(output_dir) / CHECKPOINTS / f"{PREFIX}{state.global_step:08d}"
    staging = target.with_name(f".{target.name}.tmp")
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state.save(staging)
        replace_dir(staging, target)
        for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return target


def load_checkpoint(accelerator: Accelerator, checkpoint: Path) -> TrainerState:
    """Restore everything ``save_checkpoint`` wrote; returns the progress to continue from."""
    accelerator.load_state(str(checkpoint))
    return TrainerState.load(checkpoint)
