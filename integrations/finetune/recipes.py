"""Fine-tuning recipes: a YAML file (``model:`` + ``trainer:``) -> a diffusers pipeline and a trainer config,
plus the ``--tiny`` setup (random tiny pipeline and reward, offline) the examples and tests run."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from omegaconf import OmegaConf

import reward
from integrations.diffusers import TINY_REWARD, build_tiny_pipeline, tiny_generation_kwargs
from reward.base import VideoReward

from .trainer import FinetuneConfig

ConfigT = TypeVar("ConfigT", bound=FinetuneConfig)

#: Offline rewards for --tiny runs, best first: the tiny AIGC-VQA once registered, then fallbacks.


@dataclass
class ModelSettings:
    """Which pipeline to fine-tune and how to load it."""

    pretrained: str = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    dtype: str = "bfloat16"
    vae_dtype: str | None = "float32"
    vae_tiling: bool = False
    #: AnimateDiff: a MotionAdapter hub id; ``pretrained`` is then the Stable Diffusion 1.5 base model
    motion_adapter: str | None = None
    #: replace the pipeline's scheduler by DDIM built from its config with these settings
    ddim: dict[str, Any] | None = None


def load_recipe(
    path: str | Path, config_class: type[ConfigT], overrides: Sequence[str] = ()
) -> tuple[ModelSettings, ConfigT]:
    """Read ``path`` and apply ``overrides`` such as ``trainer.learning_rate=1e-4`` (omegaconf dot-list).

    Unknown sections or fields are errors that name them, so a typo never silently keeps a default.
    """
    raw = OmegaConf.load(path)
    unknown = set(raw.keys()) - {"model", "trainer"}
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)}; a recipe has 'model:' and 'trainer:'")
    schema = OmegaConf.create({
        "model": OmegaConf.structured(ModelSettings), "trainer": OmegaConf.structured(config_class),
    })
    merged = OmegaConf.merge(schema, raw, OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_object(merged.model), OmegaConf.to_object(merged.trainer)


def load_pipeline(settings: ModelSettings) -> Any:
    """The pretrained pipeline in ``settings.dtype`` (the VAE in ``vae_dtype``), on the CPU until the trainer moves it."""
    from diffusers import AnimateDiffPipeline, DDIMScheduler, DiffusionPipeline, MotionAdapter

    dtype = getattr(torch, settings.dtype)
    if settings.motion_adapter is not None:
        adapter = MotionAdapter.from_pretrained(settings.motion_adapter, dtype=dtype)
        pipe = AnimateDiffPipeline.from_pretrained(settings.pretrained, motion_adapter=adapter, dtype=dtype)
    else:
        pipe = DiffusionPipeline.from_pretrained(settings.pretrained, dtype=dtype)
    if settings.ddim is not None:
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, **settings.ddim)
    if settings.vae_dtype is not None:
        pipe.vae.to(getattr(torch, settings.vae_dtype))
    if settings.vae_tiling:
        pipe.vae.enable_tiling()
    return pipe


def tiny_setup(config_class: type[ConfigT], family: str, **overrides: Any) -> tuple[Any, ConfigT, VideoReward]:
    """A tiny random pipeline of ``family``, a trainer config at its size, and a tiny random reward
    (``reward=`` picks another registered one)."""
    size = tiny_generation_kwargs(family)
    size.setdefault("max_sequence_length", None)
    settings = dict(prompts=["a red fox in snow", "a cat on a sofa"], **size, num_inference_steps=3,
                    guidance_scale=1.0, max_steps=2, eval_every=1, save_every=1, lora_rank=4, learning_rate=1e-2)
    settings.update(overrides)
    name = settings.pop("reward", None) or TINY_REWARD
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        scorer = reward.load(name, pretrained=False)
    return build_tiny_pipeline(family), config_class(**{"reward": name, **settings}), scorer


def run_example(trainer_class: type, argv: Sequence[str] | None, description: str) -> Any:
    """The command line both fine-tuning examples share; returns the trained trainer."""
    import argparse

    from integrations.diffusers import TINY_FAMILIES

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="a recipe YAML (training_recipes/configs/finetune/*.yaml)")
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. trainer.learning_rate=1e-4 model.dtype=float16")
    parser.add_argument("--tiny", action="store_true", help="tiny random pipeline and reward, offline, in seconds")
    parser.add_argument("--tiny-family", default="text-to-video-sd", choices=TINY_FAMILIES)
    parser.add_argument("--out", type=Path, help="output folder (checkpoints, LoRA); overrides trainer.output_dir")
    args = parser.parse_args(argv)
    if args.tiny == (args.config is not None):
        parser.error("give either --config RECIPE.yaml or --tiny")
    if args.tiny:
        overrides = OmegaConf.to_container(OmegaConf.from_dotlist(args.overrides)).get("trainer", {})
        pipe, config, scorer = tiny_setup(trainer_class.config_class, args.tiny_family, **overrides)
        model_name = f"tiny random {args.tiny_family}"
    else:
        settings, config = load_recipe(args.config, trainer_class.config_class, args.overrides)
        pipe, scorer, model_name = load_pipeline(settings), None, settings.pretrained
    if args.out is not None:
        config.output_dir = str(args.out)
    config.resume_from = config.resume_from or "latest"
    trainer = trainer_class(pipe, config, reward=scorer)
    if trainer.accelerator.is_main_process:
        print(f"fine-tuning {model_name} towards {config.reward!r} with {trainer_class.__name__} "
              f"(LoRA rank {config.lora_rank}); from step {trainer.step} to {config.max_steps}")
    start = len(trainer.history)
    trainer.train()
    if trainer.accelerator.is_main_process:
        for record in trainer.history[start:]:
            print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        print(f"LoRA: {trainer.save_lora()} (pipe.load_lora_weights(...) or integrations.finetune.lora.load_lora)")
        print(f"checkpoints: {trainer.output_dir / 'checkpoints'}")
    return trainer
