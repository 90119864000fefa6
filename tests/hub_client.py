"""Shares models on the hub and reads them back, as a user would; tests/test_hub_sharing.py runs it in a process
whose environment points huggingface_hub at tests/hub_standin.py (``HF_ENDPOINT``, online, a token).

``python tests/hub_client.py WORK_DIR`` prints one JSON object describing what came back.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import reward
from integrations.diffusers import build_tiny_pipeline
from integrations.finetune.backprop import BackpropConfig, RewardBackpropTrainer
from integrations.finetune.lora import load_lora
from integrations.finetune.recipes import tiny_setup
from peft.utils import get_peft_model_state_dict
from reward.checkpoints import load_safetensors
from training_recipes.train import train

#: A recipe run of seconds: aigc-vqa-tiny on 40 synthetic clips, a validation part selecting the best epoch.
RECIPE_OVERRIDES = [
    "data.synthetic.count=40", "data.synthetic.size=16", "train.epochs=2", "train.batch_size=8",
    "data.split.val_fraction=0.25", "train.progress=false", "train.log_every=1", "push_to_hub=tester/aigcvqa-smoke",
]
#: DOVER views shrunk to 4 frames of 32x32.
SMALL_DOVER = dict(
    technical_clip_len=4, technical_aligned=4, technical_fragments=2, technical_fragment_size=8,
    aesthetic_clip_len=4, aesthetic_t_frag=4, aesthetic_size=32,
)


def _same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def main(work: Path) -> dict:
    torch.set_num_threads(1)
    report: dict = {}

    # 1. a scorer recipe with push_to_hub: best/ and its card go up when the run ends; reward.load reads it back
    run = train("smoke_tiny", [*RECIPE_OVERRIDES, f"output_dir={work / 'run'}"])
    shared = reward.load("aigc-vqa-tiny", weights="tester/aigcvqa-smoke")
    report["recipe"] = {
        "commit": run.hub_commit,
        "same_weights": _same_tensors(shared.state_dict(), load_safetensors(run.best_dir / "model.safetensors")),
        "test_metrics": json.loads((run.best_dir / "test_metrics.json").read_text()),
        "val_metrics": json.loads((run.best_dir / "metrics.json").read_text()),
    }

    # 2. any reward: model.push_to_hub, then reward.load(name, weights="owner/repo") gives the same scores
    torch.manual_seed(0)
    dover = reward.load("dover-tiny", pretrained=False, **SMALL_DOVER)
    commit = dover.push_to_hub("tester/dover-small", license="mit")
    videos = torch.rand(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    again = reward.load("dover-tiny", weights="tester/dover-small")
    try:
        reward.load("pcqa-tiny", weights="tester/dover-small")
        refused = None
    except reward.CheckpointError as error:
        refused = str(error)
    report["reward"] = {
        "commit": commit,
        "same_scores": torch.equal(dover.score(videos).score, again.score(videos).score),
        "other_architecture_refused": refused,
    }

    # 3. a fine-tuned LoRA: the trainer's push_to_hub option uploads it when training ends; load_lora reads it back
    pipe, config, scorer = tiny_setup(BackpropConfig, "text-to-video-sd", reward="colorfulness", max_steps=1, eval_every=1,
                                      output_dir=str(work / "lora"), push_to_hub="tester/lora-smoke")
    trainer = RewardBackpropTrainer(pipe, config, reward=scorer)
    trainer.train()
    fresh = build_tiny_pipeline("text-to-video-sd")
    load_lora(fresh, "tester/lora-smoke")
    trained, loaded = get_peft_model_state_dict(trainer.denoiser), get_peft_model_state_dict(fresh.unet)
    report["lora"] = {
        "same_lora": _same_tensors(trained, loaded),
        "lora_moved": any(bool(v.abs().sum() > 0) for k, v in trained.items() if "lora_B" in k),
    }
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
