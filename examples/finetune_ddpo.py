"""Video DDPO: policy-gradient fine-tuning of a text-to-video model towards any reward (no reward gradients
needed). DDIM with eta > 0 for UNet families, the Flow-GRPO SDE step for flow-matching ones (Wan, LTX).

Real model (ModelScope text-to-video towards AIGC-VQA with PPO, group advantages and a KL penalty):

    python examples/finetune_ddpo.py --config training_recipes/configs/finetune/ddpo_modelscope.yaml

Wan2.1-T2V-1.3B with the flow-matching SDE policy, on 8 GPUs:

    accelerate launch --num_processes 8 examples/finetune_ddpo.py --config training_recipes/configs/finetune/ddpo_wan.yaml

Anywhere in seconds, offline (tiny random pipeline and reward):

    python examples/finetune_ddpo.py --tiny --out ddpo_tiny

Runs resume from the newest checkpoint in the output folder.
"""
from __future__ import annotations

import sys

from integrations.finetune.ddpo import VideoDDPOTrainer
from integrations.finetune.recipes import run_example

if __name__ == "__main__":
    run_example(VideoDDPOTrainer, sys.argv[1:], __doc__)
