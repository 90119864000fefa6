"""examples/rerank.py and the fine-tuning recipes load pipelines with diffusers' current ``dtype=`` argument:
no deprecation warning, and the weights end up in the dtype asked for."""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest
import torch

from integrations.diffusers import build_tiny_pipeline
from integrations.finetune.recipes import ModelSettings, load_pipeline
from tests.diffusers_support import one_thread  # noqa: F401  (autouse fixture)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wan_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipelines") / "wan"
    build_tiny_pipeline("wan").save_pretrained(folder)
    return folder


def _deprecations(load):
    """What ``load()`` returns, and every deprecation warning it emitted (diffusers warns with FutureWarning)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load()
    return result, [str(w.message) for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]


def test_rerank_example_loads_its_generator_without_deprecation_warnings(wan_folder):
    spec = importlib.util.spec_from_file_location("rerank_example", REPO_ROOT / "examples" / "rerank.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.parse_args(["--prompt", "a fox", "--model", str(wan_folder), "--dtype", "bfloat16", "--device", "cpu"])
    pipe, deprecations = _deprecations(lambda: module.load_pipeline(args))
    assert deprecations == []
    assert pipe.transformer.dtype == torch.bfloat16 and pipe.text_encoder.dtype == torch.bfloat16


def test_finetune_recipes_load_pipelines_without_deprecation_warnings(wan_folder):
    pipe, deprecations = _deprecations(lambda: load_pipeline(ModelSettings(pretrained=str(wan_folder), dtype="bfloat16")))
    assert deprecations == []
    assert pipe.transformer.dtype == torch.bfloat16 and pipe.vae.dtype == torch.float32  # vae_dtype


def test_finetune_recipes_load_animatediff_with_its_motion_adapter_without_deprecation_warnings(tmp_path):
    tiny = build_tiny_pipeline("animatediff")
    tiny.save_pretrained(tmp_path / "base")
    tiny.motion_adapter.save_pretrained(tmp_path / "adapter")
    settings = ModelSettings(pretrained=str(tmp_path / "base"), motion_adapter=str(tmp_path / "adapter"), dtype="float16")
    pipe, deprecations = _deprecations(lambda: load_pipeline(settings))
    assert deprecations == []
    assert type(pipe).__name__ == "AnimateDiffPipeline" and pipe.unet.dtype == torch.float16
