"""Sharing on the hub, end to end against a local stand-in of the hub's HTTP endpoints (tests/hub_standin.py).

huggingface_hub reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` when it is imported, and the tests run offline,
so the uploads and read-backs run in a child process (tests/hub_client.py) whose environment points at the
stand-in: a recipe run with ``push_to_hub``, ``model.push_to_hub`` of a reward, and a fine-tuned LoRA pushed by
its trainer's option, each read back with ``reward.load`` / ``load_lora`` through the same endpoints.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import reward
from reward.errors import WeightsNotFoundError
from reward.hub import reward_card
from tests.hub_standin import HubStandIn

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """(the stand-in after the client ran, the client's report, its work folder)."""
    work = tmp_path_factory.mktemp("hub")
    with HubStandIn() as hub:
        env = dict(
            os.environ, PYTHONPATH=str(REPO_ROOT), HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="0", HF_TOKEN=hub.token,
            HF_HUB_DISABLE_XET="1", HF_HOME=str(work / "hf"), AIGC_REWARD_CACHE=str(work / "cache"),
            HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", OMP_NUM_THREADS="1",
        )
        done = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "hub_client.py"), str(work)],
                              cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-5000:]
    return hub, json.loads(done.stdout.strip().splitlines()[-1]), work


def _card(hub: HubStandIn, repo: str) -> tuple[dict, str]:
    """The uploaded README.md: its metadata block (parsed) and its text."""
    text = hub.repos[repo].files["README.md"].decode()
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


@pytest.mark.slow
def test_a_recipe_with_push_to_hub_uploads_best_with_a_card_of_the_run_and_load_reads_it_back(shared):
    hub, report, work = shared
    repo = hub.repos["tester/aigcvqa-smoke"]
    best = work / "run" / "best"
    assert report["recipe"]["same_weights"]  # reward.load("aigc-vqa-tiny", weights="tester/aigcvqa-smoke") == best/
    assert report["recipe"]["commit"] == f"{hub.endpoint}/tester/aigcvqa-smoke/commit/{repo.commits[-1]}"
    assert sorted(repo.files) == ["README.md", "config.json", "metrics.json", "model.safetensors", "test_metrics.json",
                                  "training_config.yaml"]
    assert repo.lfs_paths == {"model.safetensors"}  # the weights went through the LFS upload, not inline
    for name in ("config.json", "model.safetensors", "training_config.yaml", "test_metrics.json"):
        assert repo.files[name] == (best / name).read_bytes(), name

    metadata, card = _card(hub, "tester/aigcvqa-smoke")
    assert metadata["license"] == "apache-2.0" and "aigc-vqa" in metadata["tags"]
    assert 'reward.load("aigc-vqa-tiny", weights="tester/aigcvqa-smoke")' in card
    assert "`technical`, `aesthetic`, `alignment`" in card and "one per video (it is prompt-conditioned)" in card
    assert "Trained with the `smoke_tiny` recipe" in card and "40 synthetic clips" in card
    assert "25% of train held out to select the best epoch" in card
    tested, selected = report["recipe"]["test_metrics"], report["recipe"]["val_metrics"]
    test_part = card.split("## Test metrics")[1].split("## ")[0]
    assert f"| srocc | {tested['srocc']:.4f} |" in test_part and f"| rmse | {tested['rmse']:.4f} |" in test_part
    assert f"step {selected['step']}, selected on the validation part by `srocc`" in test_part
    assert f"| srocc | {selected['srocc']:.4f} |" in card.split("## Metrics on the val part")[1]
    assert "```yaml\nname: smoke_tiny\n" in card and "push_to_hub: tester/aigcvqa-smoke" in card


@pytest.mark.slow
def test_any_reward_round_trips_through_push_to_hub_and_load_checks_the_architecture(shared):
    hub, report, _ = shared
    assert report["reward"]["same_scores"]
    assert sorted(hub.repos["tester/dover-small"].files) == ["README.md", "config.json", "model.safetensors"]
    metadata, card = _card(hub, "tester/dover-small")
    assert metadata["license"] == "mit" and metadata["library_name"] == "aigc-video-reward"
    assert 'reward.load("dover", weights="tester/dover-small")' in card
    assert "DOVER's overall quality of each video" in card and "Range: [0.0, 1.0]" in card
    assert "**Prompts**: not read" in card and "## Training" not in card
    assert "holds a 'dover' model, but reward.load('pcqa-tiny') builds 'pcqa' models" in report["reward"]["other_architecture_refused"]


@pytest.mark.slow
def test_a_finetuned_lora_is_pushed_by_the_trainer_option_and_loads_back(shared):
    hub, report, _ = shared
    assert report["lora"]["same_lora"] and report["lora"]["lora_moved"]
    repo = hub.repos["tester/lora-smoke"]
    assert sorted(repo.files) == ["README.md", "finetune_config.yaml", "history.json", "pytorch_lora_weights.safetensors"]
    recipe = yaml.safe_load(repo.files["finetune_config.yaml"])
    assert recipe["reward"] == "colorfulness" and recipe["push_to_hub"] == "tester/lora-smoke" and recipe["max_steps"] == 1
    history = json.loads(repo.files["history.json"])
    metadata, card = _card(hub, "tester/lora-smoke")
    assert metadata["library_name"] == "diffusers" and "lora" in metadata["tags"] and "base_model" not in metadata
    assert "A LoRA (rank 4, alpha 4" in card and "towards the reward `colorfulness` for 1 optimizer step." in card
    assert "Reward backpropagation (DRaFT-K / VADER / AlignProp)" in card
    assert 'pipe.load_lora_weights("tester/lora-smoke", weight_name="pytorch_lora_weights.safetensors")' in card
    rewards = [row["eval/reward"] for row in history if "eval/reward" in row]
    assert len(rewards) == 2 and f"| 1 | {rewards[-1]:.4g} |" in card


@pytest.mark.slow
def test_only_the_hub_endpoints_the_stand_in_serves_were_called(shared):
    hub, _, _ = shared
    served = {"/api/repos/create", "/api/validate-yaml"}
    called = {path for _, path in hub.requests}
    unexpected = {p for p in called - served if not p.startswith(("/tester/", "/api/models/tester/", "/lfs-objects/"))}
    assert unexpected == set()


def test_offline_a_hub_id_that_is_not_cached_falls_back_to_the_reward_s_own_weights_error():
    """In tests (HF_HUB_OFFLINE=1) a hub id is looked up in the cache only; DOVER then asks for its DOVER.pth."""
    with pytest.raises(WeightsNotFoundError, match="DOVER.pth"):
        reward.load("dover-tiny", weights="tester/not-cached")


def test_a_card_without_a_run_says_what_the_reward_is():
    card = reward_card(reward.load("colorfulness"), repo_id="me/colorful", license="cc-by-4.0")
    metadata = yaml.safe_load(card.split("---\n")[1])
    assert metadata["license"] == "cc-by-4.0" and "statistic" in metadata["tags"]
    assert "A prompt-free reward computed by a closed-form statistic of the pixels." in card
    assert "`colorfulness`" in card and "**Prompts**: not read" in card
    assert 'reward.VideoReward.from_pretrained("me/colorful")' in card  # brightness and colorfulness share the architecture


def test_pushing_offline_fails_before_writing_anything_and_says_why():
    with pytest.raises(ConnectionError, match="offline mode is enabled. To disable it, please unset the `HF_HUB_OFFLINE`"):
        reward.load("colorfulness").push_to_hub("me/colorful")
