"""What both fine-tuning trainers share: LoRA on the denoiser, AdamW through accelerate, held-out
evaluation with the reward-hacking guard, logging, and checkpoints that resume exactly."""
from __future__ import annotations

import abc
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn

from integrations.diffusers.adapters import adapter_for
from reward.base import VideoReward
from reward.checkpoints import atomic_write_text
from reward.mixture import resolve_reward

from .frames import parse_frames
from .guard import RewardHackingGuard
from .lora import (
    DEFAULT_TARGET_MODULES,
    add_lora,
    make_lora_config,
    read_lora_file,
    save_lora,
    set_lora_state,
)
from .sampling import StochasticPolicy, denoise

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "step-"
STATE_NAME = "trainer_state.json"
OPTIMIZER_NAME = "optimizer.pt"


@dataclass(kw_only=True)
class FinetuneConfig:
    """Settings shared by reward backprop and DDPO (every field has a working default)."""

    prompts: list[str] = field(default_factory=lambda: ["a red fox running through fresh snow"])
    negative_prompt: str | None = None
    num_frames: int = 16
    height: int = 256
    width: int = 256
    num_inference_steps: int = 25
    guidance_scale: float = 5.0
    max_sequence_length: int | None = None
    # reward: a registered name or a mixture spec such as "aigc-vqa:1.0,pcqa:0.5"
    reward: str = "aigc-vqa"
    reward_frames: str = "all"
    reward_dtype: str | None = None
    reward_compile: bool = False  # torch.compile the reward's backbones (VideoReward.compile)
    # held-out evaluation and the reward-hacking guard
    eval_prompts: list[str] = field(default_factory=list)
    eval_seeds: list[int] = field(default_factory=lambda: [1000, 1001])
    eval_every: int = 10
    watch_reward: str | None = None
    guard_tolerance: float = 0.5
    # LoRA and optimisation
    lora_rank: int = 8
    lora_alpha: float | None = None
    lora_targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    learning_rate: float = 1e-4
    weight_decay: float = 1e-2
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    max_steps: int = 100
    seed: int = 0
    # checkpoints
    output_dir: str = "finetune-output"
    save_every: int = 50
    keep_checkpoints: int = 2
    resume_from: str | None = None  # a checkpoint folder, or "latest" in output_dir
    # sharing: a hub repo id (owner/name) the LoRA and its model card are uploaded to when max_steps is reached
    push_to_hub: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _freeze_pipeline(pipe: Any) -> None:
    for component in pipe.components.values():
        if isinstance(component, nn.Module):
            component.requires_grad_(False)


class RewardFinetuner(abc.ABC):
    """Base class: subclasses implement ``training_step() -> metrics`` (one optimizer step)."""

    config_class: type[FinetuneConfig] = FinetuneConfig

    def __init__(
        self,
        pipeline: Any,
        config: FinetuneConfig,
        *,
        reward: VideoReward | str | None = None,
        watch_reward: VideoReward | str | None = None,
        accelerator: Accelerator | None = None,
    ):
        self.config = config
        self.accelerator = accelerator or Accelerator(mixed_precision=config.mixed_precision)
        self.pipe = pipeline.to(self.accelerator.device)
        self.adapter = adapter_for(pipeline)
        _freeze_pipeline(pipeline)
        self.lora_config = make_lora_config(config.lora_rank, config.lora_alpha, config.lora_targets)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # the LoRA init is part of the run's seed
            self.parameters = add_lora(self.adapter.denoiser, self.lora_config)
        self.loop_checkpointing = config.gradient_checkpointing and not self._enable_model_checkpointing()
        device = self.accelerator.device
        self.reward = self._frozen(resolve_reward(reward or config.reward, device=device, dtype=config.reward_dtype))
        if config.reward_compile:
            self.reward.compile()
        self.frames = parse_frames(config.reward_frames)
        watch = watch_reward or config.watch_reward
        self.guard = None
        if watch is not None:
            watch_model = self._frozen(resolve_reward(watch, device=device, dtype=config.reward_dtype))
            self.guard = RewardHackingGuard(
                self.reward, watch_model, every_n_steps=config.eval_every, tolerance=config.guard_tolerance
            )
        self.optimizer = self.accelerator.prepare(
            torch.optim.AdamW(
                self.parameters, lr=config.learning_rate, betas=tuple(config.adam_betas),
                weight_decay=config.weight_decay, eps=config.adam_epsilon,
            )
        )
        self.generator = torch.Generator().manual_seed(config.seed + self.accelerator.process_index)
        self.sampling_policy: StochasticPolicy | None = None
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.setup()
        if config.resume_from:
            self.resume(config.resume_from)

    def setup(self) -> None:
        """Subclass hook run before resuming: build what ``load_extra_state`` restores."""

    # -- setup helpers --------------------------------------------------------------------------
    @staticmethod
    def _frozen(model: VideoReward) -> VideoReward:
        return model.requires_grad_(False).eval()

    def _enable_model_checkpointing(self) -> bool:
        """Use the denoiser's own gradient checkpointing when diffusers supports it for this model."""
        denoiser = self.adapter.denoiser
        if getattr(denoiser, "_supports_gradient_checkpointing", False):
            denoiser.enable_gradient_checkpointing()
            return True
        return False

    @property
    def denoiser(self) -> nn.Module:
        return self.adapter.denoiser

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    def encode(self, prompts: Sequence[str]):
        """Prompt embeddings (with the CFG branch when guiding), frozen text encoder."""
        negative = None if self.config.negative_prompt is None else [self.config.negative_prompt] * len(prompts)
        return self.adapter.encode_prompt(
            list(prompts), negative, do_classifier_free_guidance=self.config.guidance_scale > 1.0,
            max_sequence_length=self.config.max_sequence_length,
        )

    def generation_kwargs(self) -> dict[str, Any]:
        c = self.config
        return {
            "num_inference_steps": c.num_inference_steps, "num_frames": c.num_frames, "height": c.height,
            "width": c.width, "guidance_scale": c.guidance_scale,
        }

    def choose_prompts(self, count: int) -> list[str]:
        """``count`` training prompts drawn (with replacement) from the trainer's generator."""
        picks = torch.randint(len(self.config.prompts), (count,), generator=self.generator)
        return [self.config.prompts[i] for i in picks.tolist()]

    # -- optimisation ------------------------------------------------------------------------------
    def optimizer_step(self) -> float:
        """Average gradients over processes, clip, step AdamW, zero the gradients; returns the grad norm."""
        if self.accelerator.num_processes > 1:
            for parameter in self.parameters:
                if parameter.grad is not None:
                    parameter.grad = self.accelerator.reduce(parameter.grad, reduction="mean")
        norm = self.accelerator.clip_grad_norm_(self.parameters, self.config.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    @abc.abstractmethod
    def training_step(self) -> dict[str, float]:
        """One optimizer step; returns its metrics (logged by ``train``)."""

    def train(self, max_steps: int | None = None) -> list[dict[str, Any]]:
        """Train until ``max_steps`` optimizer steps (config default); returns the metrics history."""
        max_steps = self.config.max_steps if max_steps is None else max_steps
        if self.step == 0 and self.wants_evaluation(0):
            self.log(self.evaluate())
        while self.step < max_steps:
            metrics = self.training_step()
            self.step += 1
            if self.wants_evaluation(self.step):
                metrics.update(self.evaluate())
            self.log(metrics)
            if self.step % self.config.save_every == 0 or self.step == max_steps:
                self.save_checkpoint()
        if self.config.push_to_hub and self.step >= self.config.max_steps:
            if self.accelerator.is_main_process:
                logger.info("uploaded the LoRA: %s", self.push_to_hub(self.config.push_to_hub))
            self.accelerator.wait_for_everyone()
        return self.history

    def log(self, metrics: dict[str, Any]) -> None:
        record = {"step": self.step, **metrics}
        self.history.append(record)
        self.accelerator.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=self.step)
        logger.info("step %d: %s", self.step, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))

    # -- held-out evaluation ------------------------------------------------------------------------
    def wants_evaluation(self, step: int) -> bool:
        return self.config.eval_every > 0 and step % self.config.eval_every == 0

    def held_out(self) -> tuple[list[str], list[int]]:
        prompts = self.config.eval_prompts or self.config.prompts
        pairs = [(prompt, seed) for prompt in prompts for seed in self.config.eval_seeds]
        return [p for p, _ in pairs], [s for _, s in pairs]

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """Evaluation videos with the sampler being trained, each reproducible from its seed."""
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        with self.accelerator.autocast():
            trajectory = denoise(
                self.adapter, self.encode(prompts), generator=generators, policy=self.sampling_policy,
                eta=getattr(self.config, "eta", 0.0), **self.generation_kwargs(),
            )
            frames = self.frames if self.frames.mode != "random" else parse_frames("all")
            return self.adapter.decode(trajectory.final, frames=frames)

    def evaluate(self) -> dict[str, float]:
        """Mean training reward on the held-out prompts and seeds (plus the guard's watch reward)."""
        was_training = self.denoiser.training
        self.denoiser.eval()
        prompts, seeds = self.held_out()
        videos = self.generate(prompts, seeds)
        self.denoiser.train(was_training)
        if self.guard is not None:
            report = self.guard.evaluate(self.step, videos, prompts)
            return {
                "eval/reward": report.train_mean, "eval/watch_reward": report.watch_mean,
                "eval/reward_gain": report.train_gain, "eval/watch_gain": report.watch_gain,
                "eval/diverged": float(report.diverged),
            }
        return {"eval/reward": float(self.reward.score(videos, prompts).score.mean())}

    # -- saving and resuming -----------------------------------------------------------------------
    def save_lora(self, directory: str | Path | None = None) -> Path:
        """The trained LoRA in diffusers' format (``pipe.load_lora_weights`` / ``lora.load_lora`` read it)."""
        return save_lora(self.pipe, self.lora_config, directory or self.output_dir)

    def push_to_hub(self, repo_id: str, **options: Any) -> str:
        """Upload the LoRA with its recipe, history and a model card to hub repo ``repo_id``; returns the commit URL.
        ``options``: ``base_model`` (default: where the pipeline was loaded from), ``license``, ``private``, ``token``."""
        from .hub import push_lora

        return push_lora(self, repo_id, **options)

    def extra_state(self) -> dict[str, Any]:
        """Subclass state that must survive a restart (JSON-serialisable)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what ``extra_state`` returned."""

    def save_checkpoint(self) -> Path | None:
        """Atomically write ``output_dir/checkpoints/step-N`` (LoRA, optimizer, RNG, trainer state)."""
        self.accelerator.wait_for_everyone()
        root = self.output_dir / "checkpoints"
        final = root / f"{CHECKPOINT_PREFIX}{self.step:06d}"
        rank = self.accelerator.process_index
        if self.accelerator.is_main_process:
            staging = root / f".{final.name}.{os.getpid()}.partial"  # renamed into place when complete
            if staging.exists():
                shutil.rmtree(staging)
            staging.mkdir(parents=True)
            save_lora(self.pipe, self.lora_config, staging)
            torch.save(self.optimizer.state_dict(), staging / OPTIMIZER_NAME)
            state = {"step": self.step, "history": self.history, "config": self.config.to_dict(), "extra": self.extra_state()}
            atomic_write_text(staging / STATE_NAME, json.dumps(state, indent=1, default=float))
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
            self._prune(root)
        self.accelerator.wait_for_everyone()
        torch.save(self._rng_state(), final / f"rng-{rank}.pt")
        return final

    def _prune(self, root: Path) -> None:
        complete = sorted(path for path in root.glob(f"{CHECKPOINT_PREFIX}*") if (path / STATE_NAME).is_file())
        for stale in complete[: max(0, len(complete) - self.config.keep_checkpoints)]:
            shutil.rmtree(stale)

    def _rng_state(self) -> dict[str, torch.Tensor]:
        state = {"torch": torch.get_rng_state(), "generator": self.generator.get_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state()
        return state

    def latest_checkpoint(self) -> Path | None:
        root = self.output_dir / "checkpoints"
        complete = sorted(path for path in root.glob(f"{CHECKPOINT_PREFIX}*") if (path / STATE_NAME).is_file())
        return complete[-1] if complete else None

    def resume(self, checkpoint: str | Path = "latest") -> bool:
        """Restore LoRA, optimizer, RNG and trainer state; ``"latest"`` picks the newest in ``output_dir``.

        Returns False (and starts fresh) when ``"latest"`` finds nothing.
        """
        path = self.latest_checkpoint() if str(checkpoint) == "latest" else Path(checkpoint)
        if path is None:
            logger.info("no checkpoint under %s: starting from step 0", self.output_dir)
            return False
        if not (path / STATE_NAME).is_file():
            raise FileNotFoundError(f"{path} is not a complete checkpoint (no {STATE_NAME}); pick another step-N folder")
        lora_state, _ = read_lora_file(self.pipe, path)
        set_lora_state(self.denoiser, lora_state)
        self.optimizer.load_state_dict(torch.load(path / OPTIMIZER_NAME, map_location="cpu", weights_only=True))
        state = json.loads((path / STATE_NAME).read_text())
        self.step, self.history = int(state["step"]), list(state["history"])
        self.load_extra_state(state["extra"])
        rng_file = path / f"rng-{self.accelerator.process_index}.pt"
        rng = torch.load(rng_file, weights_only=True)
        torch.set_rng_state(rng["torch"])
        self.generator.set_state(rng["generator"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
        logger.info("resumed from %s at step %d", path, self.step)
        return True
