"""examples/finetune_*.py and the training_recipes/configs/finetune/*.yaml recipes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from integrations.finetune.backprop import BackpropConfig, RewardBackpropTrainer
from integrations.finetune.ddpo import DDPOConfig, VideoDDPOTrainer
from integrations.finetune.recipes import ModelSettings, load_recipe, run_example
from tests.diffusers_support import one_thread  # noqa: F401  (autouse fixture)

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO_ROOT / "training_recipes" / "configs" / "finetune").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.stem)
def test_every_recipe_builds_a_valid_config(path):
    config_class = BackpropConfig if "backprop" in path.stem else DDPOConfig
    settings, config = load_recipe(path, config_class, ["trainer.max_steps=3"])
    assert isinstance(settings, ModelSettings) and isinstance(config, config_class)
    assert config.max_steps == 3 and config.prompts and config.watch_reward
    assert settings.pretrained.count("/") == 1  # a hub id


def test_recipe_typos_are_errors(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("trainer:\n  learning_rat: 1.0e-4\n")
    with pytest.raises(Exception, match="learning_rat"):
        load_recipe(recipe, BackpropConfig)
    recipe.write_text("optimizer:\n  lr: 1.0\n")
    with pytest.raises(ValueError, match="unknown sections"):
        load_recipe(recipe, BackpropConfig)
    assert len(RECIPES) == 6


def test_tiny_backprop_example_runs_offline_and_resumes(tmp_path, capsys):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    arguments = ["--tiny", "--out", str(tmp_path / "out"), "trainer.reward=colorfulness"]
    first = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "finetune_backprop.py"), *arguments],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert "from step 0 to 2" in first.stdout and "eval/reward=" in first.stdout
    assert (tmp_path / "out" / "pytorch_lora_weights.safetensors").is_file()
    assert (tmp_path / "out" / "checkpoints" / "step-000002").is_dir()
    resumed = run_example(RewardBackpropTrainer, [*arguments, "trainer.max_steps=3"], "backprop")
    assert "from step 2 to 3" in capsys.readouterr().out and resumed.step == 3
    assert (tmp_path / "out" / "checkpoints" / "step-000003").is_dir()


def test_tiny_ddpo_example_on_the_flow_family(tmp_path):
    arguments = ["--tiny", "--tiny-family", "wan", "--out", str(tmp_path), "trainer.sample_batch_size=4",
                 "trainer.reward=colorfulness"]
    trainer = run_example(VideoDDPOTrainer, arguments, "ddpo")
    assert trainer.step == 2 and type(trainer).__name__ == "VideoDDPOTrainer"
    assert (tmp_path / "pytorch_lora_weights.safetensors").is_file()
    with pytest.raises(SystemExit):
        run_example(RewardBackpropTrainer, [], "needs --tiny or --config")
