"""Train a scorer from a recipe: ``python -m training_recipes.train RECIPE [key=value ...]``.

Runs on one CPU, one GPU, or many (``accelerate launch -m training_recipes.train RECIPE ...``).
Each run folder holds the resolved config, ``metrics.jsonl`` / ``train.csv`` / ``eval.csv``,
``checkpoints/step_*`` (every ``train.checkpoint_every`` steps, each epoch end, and on SIGINT /
SIGTERM), ``best/`` (native format, by ``eval.metric``) and ``final/``. Running the same command
again resumes from the newest checkpoint exactly: same weights, same data order, same metrics.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from reward import metrics
from reward.checkpoints import atomic_write_text, load_safetensors

from .checkpointing import CHECKPOINTS, TrainerState, list_checkpoints, load_checkpoint, save_checkpoint, write_dir_atomically
from .config import load_config, save_config, split_cli
from .data.dataset import EpochSampler
from .data.from_config import build_data
from .evaluation import finite_or_none, format_metrics, predict, score_metrics
from .metrics_log import MetricsLog
from .modeling import apply_stage, build_model, format_trainable_report, save_trainable_report
from .objectives import make_objective
from .session import accelerator_session, compute_dtype

BEST, FINAL = "best", "final"
METRICS_NAME = "metrics.json"
#: Written into best/ when a validation part selected it: its metrics on the test part.
TEST_METRICS_NAME = "test_metrics.json"
#: Exit code of an interrupted run (as for SIGINT); rerun the same command to resume.
INTERRUPTED_EXIT_CODE = 130


@dataclass
class TrainResult:
    """How a ``train`` call ended; ``metrics`` are the best checkpoint's (on test when a val part selected it)."""

    output_dir: Path
    state: TrainerState
    interrupted: bool
    best_dir: Path | None = None
    final_dir: Path | None = None
    metrics: dict | None = None
    hub_commit: str | None = None  # the commit URL when ``push_to_hub`` uploaded the model


@contextlib.contextmanager
def checkpoint_on_signals(accelerator: Accelerator):
    """SIGINT / SIGTERM ask for a checkpoint at the end of the current step; a second signal acts as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in signals}

    def request_stop(number, frame):
        accelerator.set_trigger()
        signal.signal(number, previous[number])
        print(f"\n{signal.Signals(number).name}: saving a checkpoint after this step (send again to abort).", file=sys.stderr)

    for number in signals:
        signal.signal(number, request_stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class Trainer:
    """One run of a recipe: data, model, optimisation, evaluation, checkpoints and exports."""

    def __init__(self, config: DictConfig, accelerator: Accelerator):
        self.config = config
        self.accelerator = accelerator
        self.output_dir = Path(config.output_dir)
        set_seed(config.seed)
        with accelerator.main_process_first():
            self.data = build_data(config.data, seed=config.seed, verify=accelerator.is_main_process)
        model = build_model(config.model)
        model.set_compute_dtype(compute_dtype(config))
        branches = apply_stage(model, config.stage)
        model.train()
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        if not self.trainable:
            raise ValueError("no parameter is trainable: check stage.train and stage.unfrozen_fraction")
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, self.output_dir)
            save_trainable_report(branches, self.output_dir)
        accelerator.print(f"training {config.name}: {len(self.data.split.train)} train items\n{format_trainable_report(branches)}")

        train_set = self.data.dataset("train", training=True)
        self.sampler = EpochSampler(len(train_set), seed=config.seed)
        loader_rng = torch.Generator().manual_seed(config.seed)  # keeps loader start-up off the global RNG
        train_loader = DataLoader(
            train_set, batch_size=config.train.batch_size, sampler=self.sampler, num_workers=config.data.num_workers,
            drop_last=config.train.drop_last, generator=loader_rng,
        )
        self.eval_part = "val" if config.data.split.val_fraction > 0 else config.eval.split
        eval_loader = self._eval_loader(self.eval_part, loader_rng)
        self.total_steps = math.ceil(len(train_loader) / config.train.grad_accum) * config.train.epochs
        if config.train.max_steps:
            self.total_steps = min(self.total_steps, config.train.max_steps)
        optimizer = torch.optim.AdamW(
            self.trainable, lr=config.optim.lr, betas=tuple(config.optim.betas), weight_decay=config.optim.weight_decay
        )
        scheduler = get_scheduler(
            config.optim.scheduler, optimizer,
            num_warmup_steps=round(config.optim.warmup_ratio * self.total_steps), num_training_steps=self.total_steps,
        )
        self.model, self.optimizer, self.train_loader, self.eval_loader, self.scheduler = accelerator.prepare(
            model, optimizer, train_loader, eval_loader, scheduler
        )
        self.objective = make_objective(config.loss, normalized_targets=self.data.mos_stats is not None)

        if not config.train.resume:
            self._start_over()
        checkpoints = list_checkpoints(self.output_dir)
        self.state = TrainerState()
        if checkpoints:
            self.state = load_checkpoint(accelerator, checkpoints[-1])
            accelerator.print(f"resumed from {checkpoints[-1]} (epoch {self.state.epoch}, step {self.state.global_step})")
        self.log = MetricsLog(self.output_dir, enabled=accelerator.is_main_process, rows=self.state.log_rows)
        if accelerator.log_with:
            accelerator.init_trackers(config.name)

    def _start_over(self) -> None:
        """``train.resume=false``: drop an earlier run's checkpoints and exports in this folder."""
        stale = [self.output_dir / name for name in (CHECKPOINTS, BEST, FINAL) if (self.output_dir / name).exists()]
        if stale and self.accelerator.is_main_process:
            self.accelerator.print(f"train.resume=false: removing {', '.join(str(p) for p in stale)} of an earlier run")
            for folder in stale:
                shutil.rmtree(folder)
        self.accelerator.wait_for_everyone()

    def _eval_loader(self, part: str, generator: torch.Generator | None = None) -> DataLoader:
        batch_size = self.config.train.eval_batch_size or self.config.train.batch_size
        return DataLoader(self.data.dataset(part), batch_size=batch_size, num_workers=self.config.data.num_workers, generator=generator)

    # -- the loop -------------------------------------------------------------------------------
    def run(self, on_step: Callable[[TrainerState], None] | None = None) -> TrainResult:
        config, state = self.config, self.state
        interrupted = finished = False
        progress = tqdm(
            total=self.total_steps, initial=state.global_step, desc=config.name,
            disable=not (config.train.progress and self.accelerator.is_local_main_process),
        )
        with checkpoint_on_signals(self.accelerator):
            while state.epoch < config.train.epochs and not (interrupted or finished):
                outcome = self._train_epoch(progress, on_step)
                interrupted, finished = outcome == "interrupted", outcome == "max_steps"
                if interrupted:
                    break
                if not finished:
                    state.epoch += 1
                    state.batches_in_epoch = 0
                if finished or state.epoch >= config.train.epochs or state.epoch % config.eval.every == 0:
                    self._evaluate_and_select()
                self._checkpoint()
        progress.close()
        if interrupted:
            self.accelerator.print(f"interrupted at step {state.global_step}: checkpoint saved; run the same command again to resume.")
            return TrainResult(self.output_dir, state, interrupted=True)
        return self._publish(self._finish())

    def _train_epoch(self, progress: tqdm, on_step) -> str:
        """Train until the epoch ends (``"done"``), a stop is requested (``"interrupted"``) or max_steps (``"max_steps"``)."""
        config, state, accelerator = self.config, self.state, self.accelerator
        self.sampler.set_epoch(state.epoch)
        self.train_loader.set_epoch(state.epoch)  # accelerate re-sets the sampler's epoch from its own counter
        loader = self.train_loader
        if state.batches_in_epoch:
            loader = accelerator.skip_first_batches(self.train_loader, state.batches_in_epoch)
        self.model.train()
        for batch in loader:
            with accelerator.accumulate(self.model):
                terms = self.objective(self.model(batch["videos"], batch["prompts"]), batch)
                accelerator.backward(terms["loss"])
                if accelerator.sync_gradients and config.optim.grad_clip:
                    accelerator.clip_grad_norm_(self.trainable, config.optim.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            state.batches_in_epoch += 1
            if not accelerator.sync_gradients:
                continue
            state.global_step += 1
            progress.update(1)
            if state.global_step % config.train.log_every == 0 or state.global_step == 1:
                self._log_step(terms, progress)
            if on_step is not None:
                on_step(state)
            if accelerator.check_trigger():
                self._checkpoint()
                return "interrupted"
            if config.train.max_steps and state.global_step >= config.train.max_steps:
                return "max_steps"
            if config.train.checkpoint_every and state.global_step % config.train.checkpoint_every == 0:
                self._checkpoint()
        return "done"

    def _log_step(self, terms: dict[str, torch.Tensor], progress: tqdm) -> None:
        values = {k: float(self.accelerator.reduce(v.detach().float(), "mean")) for k, v in terms.items()}
        values["lr"] = self.scheduler.get_last_lr()[0]
        self.log.log("train", {"step": self.state.global_step, "epoch": self.state.epoch, **values})
        self.accelerator.log({f"train/{k}": v for k, v in values.items()}, step=self.state.global_step)
        progress.set_postfix(loss=f"{values['loss']:.4f}")

    # -- evaluation, checkpoints, exports ---------------------------------------------------------
    def _evaluate(self, loader: DataLoader, part: str, step: int | None) -> dict:
        predictions, mos = predict(self.model, loader, self.accelerator, progress=self.config.train.progress)
        result = score_metrics(predictions, mos, mos_stats=self.data.mos_stats, logistic=self.config.eval.logistic)
        row = {"step": step, "epoch": self.state.epoch, "split": part, **result}
        self.log.log("eval", row)
        self.accelerator.log({f"eval/{part}/{k}": v for k, v in result.items()}, step=self.state.global_step)
        self.accelerator.print(f"epoch {self.state.epoch} step {step} on {part}:\n{format_metrics(result)}")
        return row

    def _evaluate_and_select(self) -> None:
        row = self._evaluate(self.eval_loader, self.eval_part, self.state.global_step)
        value = row[self.config.eval.metric]
        if metrics.is_better(value, self.state.best_metric, higher_is_better=self.config.eval.metric != "rmse"):
            self.state.best_metric, self.state.best_step = value, self.state.global_step
            self._export(self.output_dir / BEST, row)

    def _checkpoint(self) -> None:
        self.state.log_rows = dict(self.log.rows)
        save_checkpoint(self.accelerator, self.output_dir, self.state, keep=self.config.train.keep_checkpoints)

    def _export(self, folder: Path, metrics_row: dict | None) -> Path:
        """A native checkpoint (``save_pretrained``) with the MOS statistics, config and metrics beside it."""

        def fill(staging: Path) -> None:
            self.accelerator.unwrap_model(self.model).save_pretrained(staging)
            if self.data.mos_stats is not None:
                self.data.mos_stats.save(staging)
            save_config(self.config, staging)
            if metrics_row is not None:
                atomic_write_text(staging / METRICS_NAME, json.dumps({k: finite_or_none(v) for k, v in metrics_row.items()}, indent=2))

        if self.accelerator.is_main_process:
            write_dir_atomically(folder, fill)
        self.accelerator.wait_for_everyone()
        return folder

    def _finish(self) -> TrainResult:
        result = TrainResult(self.output_dir, self.state, interrupted=False, final_dir=self._export(self.output_dir / FINAL, None))
        best = self.output_dir / BEST
        if not (best / METRICS_NAME).is_file():
            return result
        result.best_dir = best
        if self.eval_part != "val":
            result.metrics = json.loads((best / METRICS_NAME).read_text())
            return result
        tested = best / TEST_METRICS_NAME
        if not tested.is_file():
            self.accelerator.unwrap_model(self.model).load_state_dict(load_safetensors(best / "model.safetensors"))
            row = self._evaluate(self.accelerator.prepare(self._eval_loader("test")), "test", self.state.best_step)
            if self.accelerator.is_main_process:
                atomic_write_text(tested, json.dumps({k: finite_or_none(v) for k, v in row.items()}, indent=2))
            self.accelerator.wait_for_everyone()
        result.metrics = json.loads(tested.read_text())
        return result

    def _publish(self, result: TrainResult) -> TrainResult:
        """``push_to_hub: owner/name``: rank 0 uploads ``best/`` (else ``final/``) with a model card of the run."""
        if self.config.push_to_hub and self.accelerator.is_main_process:
            from .hub import push_run

            result.hub_commit = push_run(self.output_dir, self.config.push_to_hub)
            self.accelerator.print(f"uploaded to the hub: {result.hub_commit}")
        self.accelerator.wait_for_everyone()
        return result


def train(
    config: DictConfig | str | Path, overrides: Sequence[str] = (), *, on_step: Callable[[TrainerState], None] | None = None
) -> TrainResult:
    """Run (or resume) the recipe ``config`` (a DictConfig, a YAML path or a bundled recipe name).

    ``on_step(state)`` is called after every optimizer step.
    """
    config = config if isinstance(config, DictConfig) else load_config(config, overrides)
    with accelerator_session(config, training=True) as accelerator:
        return Trainer(config, accelerator).run(on_step)


def main(argv: Sequence[str] | None = None) -> int:
    arguments, overrides = split_cli(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1 or arguments[0].startswith("-"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: python -m training_recipes.train RECIPE [key=value ...]   (RECIPE: a YAML file or a bundled name)", file=sys.stderr)
        return 2
    result = train(arguments[0], overrides)
    return INTERRUPTED_EXIT_CODE if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
