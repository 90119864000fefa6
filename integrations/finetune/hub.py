"""Sharing a fine-tuned LoRA on the Hugging Face hub: the diffusers LoRA file, the trainer's recipe and a model card."""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from reward.checkpoints import atomic_write_text
from reward.hub import DEFAULT_LICENSE, LIBRARY_NAME, card_front_matter, push_folder
from reward.weights import is_hub_reference

from .lora import LORA_WEIGHT_NAME, denoiser_name

if TYPE_CHECKING:
    from .trainer import RewardFinetuner

#: The trainer's settings, uploaded beside the LoRA.
RECIPE_NAME = "finetune_config.yaml"
#: Every logged step (training and held-out metrics), uploaded beside the LoRA.
HISTORY_NAME = "history.json"


def base_model_of(pipeline: Any) -> str | None:
    """The hub id or folder the pipeline was loaded from (None for a pipeline built in memory)."""
    return getattr(pipeline, "name_or_path", None) or None


def lora_card(trainer: RewardFinetuner, *, repo_id: str, base_model: str | None, license: str = DEFAULT_LICENSE) -> str:
    """What the LoRA is (base model, rank, targets), how to load it, how it was trained and what it gained."""
    config, lora = trainer.config, trainer.lora_config
    hub_base = base_model if base_model and is_hub_reference(base_model) else None
    method_doc = sys.modules[type(trainer).__module__].__doc__ or type(trainer).__name__  # e.g. finetune/backprop.py's
    method = method_doc.strip().split("\n\n")[0].replace("\n", " ")
    front = card_front_matter(
        license=license, library_name="diffusers", base_model=hub_base,
        tags=["lora", "text-to-video", "diffusers", LIBRARY_NAME, "reward-finetuning"],
    )
    base_line = f'pipe = DiffusionPipeline.from_pretrained("{base_model or "<the base model>"}", dtype=torch.bfloat16)'
    lines = [
        front,
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A LoRA (rank {lora.r}, alpha {lora.lora_alpha}, on {', '.join(f'`{t}`' for t in sorted(lora.target_modules))}) "
        f"for the `{denoiser_name(trainer.pipe)}` of "
        + (f"`{base_model}` (`{type(trainer.pipe).__name__}`)" if base_model else f"a `{type(trainer.pipe).__name__}` built in memory")
        + f", fine-tuned with `{LIBRARY_NAME}`'s `{type(trainer).__name__}` towards the reward `{config.reward}` "
        f"for {trainer.step} optimizer step{'s' if trainer.step != 1 else ''}.",
        "",
        "## Use",
        "",
        "```python",
        "import torch",
        "from diffusers import DiffusionPipeline",
        "",
        base_line,
        f'pipe.load_lora_weights("{repo_id}", weight_name="{LORA_WEIGHT_NAME}")',
        "# ModelScope's UNet3DConditionModel has no diffusers LoRA loader; this works for every family:",
        f'# from integrations.finetune import load_lora; load_lora(pipe, "{repo_id}")',
        "```",
        "",
        "## Training",
        "",
        f"- **Method**: {method}",
        f"- **Reward**: `{config.reward}` (on frames `{config.reward_frames}`)"
        + (f"; held-out watch reward `{config.watch_reward}` (reward-hacking guard)" if config.watch_reward else "") + ".",
        f"- **Prompts**: {len(config.prompts)} training prompts; held-out evaluation on "
        f"{len(config.eval_prompts or config.prompts)} prompts x seeds {list(config.eval_seeds)}.",
        f"- **Sampling**: {config.num_frames} frames of {config.height}x{config.width}, {config.num_inference_steps} steps, "
        f"guidance {config.guidance_scale}; learning rate {config.learning_rate}, seed {config.seed}.",
        "",
        _evaluation_table(trainer.history),
        "## Recipe",
        "",
        f"`{RECIPE_NAME}`, the trainer's settings:",
        "",
        "```yaml",
        OmegaConf.to_yaml(OmegaConf.create(config.to_dict())).rstrip(),
        "```",
        "",
        "## License",
        "",
        f"`{license}` for this LoRA; the base model keeps its own license.",
        "",
    ]
    return "\n".join(lines)


def _evaluation_table(history: list[dict[str, Any]]) -> str:
    """Held-out metrics at every evaluation (``eval/*`` keys of the trainer's history)."""
    rows = [row for row in history if any(key.startswith("eval/") for key in row)]
    if not rows:
        return "No held-out evaluation was run (`eval_every: 0`).\n"
    keys = sorted({key for row in rows for key in row if key.startswith("eval/")})
    lines = ["## Held-out evaluation", "", "| step | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for row in rows:
        lines.append(f"| {row['step']} | " + " | ".join("-" if row.get(k) is None else f"{row[k]:.4g}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


def push_lora(
    trainer: RewardFinetuner,
    repo_id: str,
    *,
    base_model: str | None = None,
    license: str = DEFAULT_LICENSE,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload the trainer's LoRA, its recipe and history with a model card; returns the commit URL."""
    base_model = base_model or base_model_of(trainer.pipe)
    with tempfile.TemporaryDirectory(prefix="push-lora-") as staging:
        folder = Path(staging)
        trainer.save_lora(folder)
        atomic_write_text(folder / RECIPE_NAME, OmegaConf.to_yaml(OmegaConf.create(trainer.config.to_dict())))
        atomic_write_text(folder / HISTORY_NAME, json.dumps(trainer.history, indent=1, default=float))
        card = lora_card(trainer, repo_id=repo_id, base_model=base_model, license=license)
        return push_folder(folder, repo_id, card=card, private=private, token=token, commit_message=commit_message)
