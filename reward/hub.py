"""Sharing rewards on the Hugging Face hub: the native folder plus a model card, in one huggingface_hub commit.

``model.push_to_hub("owner/name")`` uploads ``config.json``, ``model.safetensors`` and a ``README.md``
saying what the reward is (architecture, components, what the score means, how to load it) and, with
``run=`` a training run, how it was trained and how it scored; ``reward.load(preset, weights="owner/name")``
reads it back.
"""
from __future__ import annotations

import inspect
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import VideoReward

MODEL_CARD_NAME = "README.md"
DEFAULT_LICENSE = "apache-2.0"
LIBRARY_NAME = "aigc-video-reward"


def card_front_matter(**fields: object) -> str:
    """The YAML block the hub reads (license, library, tags, ...), written by huggingface_hub's ``ModelCardData``."""
    from huggingface_hub import ModelCardData

    return f"---\n{ModelCardData(**fields).to_yaml()}\n---\n"


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    card: str,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and commit every file of ``folder`` plus ``card`` as README.md; returns the commit URL."""
    from huggingface_hub import CommitOperationAdd, HfApi

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".") and p.name != MODEL_CARD_NAME)
    operations = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p)) for p in files]
    operations.append(CommitOperationAdd(path_in_repo=MODEL_CARD_NAME, path_or_fileobj=card.encode("utf-8")))
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.create_commit(
        repo_id, operations, commit_message=commit_message or f"Upload {', '.join(op.path_in_repo for op in operations)}"
    )
    return commit.commit_url


def loading_preset(model: VideoReward, preset: str | None = None) -> str | None:
    """The ``reward.load`` name to read ``model``'s folder back with: ``preset``, else the preset named after its
    architecture or its only preset; None when that is ambiguous (the card then uses ``from_pretrained``)."""
    from .registry import list_rewards, reward_spec

    if preset is not None:
        return preset
    names = [name for name in list_rewards() if reward_spec(name).architecture == model.architecture]
    return model.architecture if model.architecture in names else (names[0] if len(names) == 1 else None)


def reward_card(
    model: VideoReward, *, repo_id: str, preset: str | None = None, license: str = DEFAULT_LICENSE, sections: Sequence[str] = ()
) -> str:
    """A model card for ``model``: what it scores and how to load it, then ``sections`` (e.g. its training)."""
    from .registry import reward_spec

    preset = loading_preset(model, preset)
    spec = reward_spec(preset) if preset is not None else None
    summary = (inspect.getdoc(type(model)) or f"the {model.architecture} score").split("\n\n")[0].replace("\n", " ")
    load_line = (f'model = reward.load("{preset}", weights="{repo_id}")' if preset
                 else f'model = reward.VideoReward.from_pretrained("{repo_id}")')
    prompts = "one per video (it is prompt-conditioned)" if model.requires_prompts else "not read (any text, `\"\"` or `None`)"
    components = ", ".join(f"`{name}`" for name in model.component_names) or "none"
    higher = spec is None or spec.higher_is_better
    lines = [
        card_front_matter(license=license, library_name=LIBRARY_NAME,
                          tags=[LIBRARY_NAME, "video-quality-assessment", "reward-model", model.architecture]),
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A video reward of architecture `{model.architecture}` for the `{LIBRARY_NAME}` library: it scores videos "
        "`[B, T, 3, H, W]` in [0, 1] differentiably, for best-of-N selection and reward-guided fine-tuning.",
        "",
        "## Use",
        "",
        "```python",
        "import reward",
        "",
        load_line,
        "out = model(videos, prompts)   # videos: [B, T, 3, H, W] floats in [0, 1]",
        "out.score, out.components      # [B] each, differentiable with respect to videos",
        "```",
        "",
        "## Score and components",
        "",
        f"- **Architecture**: `{model.architecture}` (`{type(model).__name__}`), "
        f"{sum(p.numel() for p in model.parameters()):,} parameters; `config.json` holds its configuration.",
        f"- **Score**: {summary} " + ("Higher is better." if higher else "Lower is better.")
        + (f" Range: {list(spec.score_range)}." if spec and spec.score_range else ""),
        f"- **Components**: {components}, each `[B]`, reported beside the score.",
        f"- **Prompts**: {prompts}.",
        "",
        *(section.rstrip() + "\n" for section in sections),
        "## License",
        "",
        f"`{license}`.",
        "",
    ]
    return "\n".join(lines)


def push_reward(
    model: VideoReward,
    repo_id: str,
    *,
    run: str | Path | None = None,
    preset: str | None = None,
    license: str = DEFAULT_LICENSE,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload ``model``'s native folder with its model card; ``run`` (a training run or its ``best/``) adds the
    recipe, the data and the test metrics to the card and the recipe's files to the upload."""
    with tempfile.TemporaryDirectory(prefix="push-") as staging:
        folder = model.save_pretrained(Path(staging) / "model")
        sections: list[str] = []
        if run is not None:
            from training_recipes.hub import add_run  # the recipes know their run folders

            record = add_run(run, folder)
            sections, preset = record.sections, preset or record.preset
        card = reward_card(model, repo_id=repo_id, preset=preset, license=license, sections=sections)
        return push_folder(folder, repo_id, card=card, private=private, token=token, commit_message=commit_message)
