"""Reward backprop fine-tuning (DRaFT-K / VADER style): LoRA on a text-to-video model, gradients from the
reward through the VAE decode and the last K denoising steps.

Real model (Wan2.1-T2V-1.3B towards AIGC-VQA, PCQA watching for reward hacking; a 40-80 GB GPU):

    python examples/finetune_backprop.py --config training_recipes/configs/finetune/backprop_wan.yaml

Several GPUs (accelerate averages the LoRA gradients), recipe values overridden on the command line:

    accelerate launch --num_processes 4 examples/finetune_backprop.py \\
        --config training_recipes/configs/finetune/backprop_animatediff.yaml trainer.learning_rate=5e-5

Anywhere in seconds, offline (tiny random pipeline and reward):

    python examples/finetune_backprop.py --tiny --out finetune_tiny

Runs resume from the newest checkpoint in the output folder.
"""
from __future__ import annotations

import sys

from integrations.finetune.backprop import RewardBackpropTrainer
from integrations.finetune.recipes import run_example

if __name__ == "__main__":
    run_example(RewardBackpropTrainer, sys.argv[1:], __doc__)
