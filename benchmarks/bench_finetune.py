"""Fine-tuning memory: how K, gradient checkpointing and frame selection move the activation memory
of reward backprop, and what one DDPO step keeps.

Activation memory is measured exactly as the bytes of the tensors autograd saves for backward
(``torch.autograd.graph.saved_tensors_hooks``), so it does not depend on the machine. The model is
the tiny random ModelScope-style pipeline at 64x64, 8 frames, 8 steps: compare rows, not absolute values.

    python benchmarks/bench_finetune.py
"""
from __future__ import annotations

import argparse
import platform
import tempfile
from collections.abc import Callable
from typing import Any

import torch

from integrations.diffusers import build_tiny_pipeline
from integrations.finetune.backprop import BackpropConfig, RewardBackpropTrainer
from integrations.finetune.ddpo import DDPOConfig, VideoDDPOTrainer
from integrations.finetune.frames import parse_frames
from results_md import write_section

HEADING = "## Fine-tuning memory"
SIZE = dict(num_frames=8, height=64, width=64, num_inference_steps=8, guidance_scale=1.0)


def saved_bytes(step: Callable[[], Any]) -> int:
    """Bytes autograd keeps for backward while ``step`` runs, each storage counted once."""
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(seen.values())


def backprop_trainer(**overrides: Any) -> RewardBackpropTrainer:
    config = BackpropConfig(prompts=["a red fox"], **SIZE, reward="colorfulness", eval_every=0, lora_rank=8,
                            output_dir=tempfile.mkdtemp(), **overrides)
    return RewardBackpropTrainer(build_tiny_pipeline("text-to-video-sd"), config)


def backprop_row(label: str, **overrides: Any) -> tuple[str, int]:
    return label, saved_bytes(backprop_trainer(**overrides).micro_step)


def decode_row(label: str, frames: str) -> tuple[str, int]:
    """The VAE decode alone: what decoding fewer frames saves (the tiny VAE is far smaller than real ones)."""
    trainer = backprop_trainer()
    latents = torch.randn(1, 4, SIZE["num_frames"], 32, 32, requires_grad=True)
    selection = parse_frames(frames)
    return label, saved_bytes(lambda: trainer.adapter.decode(latents, frames=selection).sum().backward())


def ddpo_row() -> tuple[str, int]:
    config = DDPOConfig(prompts=["a red fox"], **SIZE, reward="colorfulness", eval_every=0, lora_rank=8,
                        sample_batch_size=1, sample_batches_per_epoch=1, train_batch_size=1, output_dir=tempfile.mkdtemp())
    trainer = VideoDDPOTrainer(build_tiny_pipeline("text-to-video-sd"), config)
    samples = trainer.sample()
    samples.advantages = trainer.compute_advantages(samples)
    trainer.prepare_schedule()
    embeds = trainer.encode(samples.prompts)

    def one_step() -> None:
        loss, _ = trainer.ppo_loss(samples, torch.tensor([0]), 0, embeds)
        loss.backward()

    return "DDPO: one PPO step (independent of the number of steps)", saved_bytes(one_step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print the table without updating RESULTS.md")
    args = parser.parse_args()
    rows = [
        backprop_row("backprop K=1, decode all 8 frames", truncation_steps=1),
        backprop_row("backprop K=4", truncation_steps=4),
        backprop_row("backprop K=8 (every step)", truncation_steps=8),
        backprop_row("backprop K=4 + gradient checkpointing (kept until backward; "
                     "backward recomputes one denoiser call at a time)", truncation_steps=4, gradient_checkpointing=True),
        backprop_row("backprop K=1, decode frames first:2", truncation_steps=1, reward_frames="first:2"),
        ddpo_row(),
        decode_row("VAE decode alone, all 8 frames", "all"),
        decode_row("VAE decode alone, stride:4 (2 frames)", "stride:4"),
    ]
    base = rows[0][1]
    lines = [
        "`python benchmarks/bench_finetune.py`: tiny random ModelScope-style pipeline (UNet3D), 64x64, "
        f"8 frames, 8 DDIM steps, batch 1, LoRA rank 8, colorfulness reward; torch {torch.__version__}, "
        f"{platform.machine()}. Activation memory = bytes of the tensors autograd saves for backward "
        "(exact and machine-independent; the tiny VAE is far smaller than real ones, so its share is small here).",
        "",
        "| setting | activations (MB) | vs backprop K=1 |",
        "|---|---|---|",
    ]
    lines += [f"| {label} | {saved / 2**20:.1f} | {saved / base:.2f}x |" for label, saved in rows]
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section(HEADING, table)
        print(f"wrote the {HEADING!r} section of benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
