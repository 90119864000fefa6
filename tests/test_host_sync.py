"""No host synchronisation in a reward's hot path: input checks, views, models, forward and backward.

On this CPU machine the forward runs on a simulated CUDA device (tests/sync_checks.py); the tests
marked ``cuda`` repeat it on a real GPU under ``torch.cuda.set_sync_debug_mode("error")``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import reward
from reward.errors import RewardInputError
from reward.pcqa.config import PCQAEnsembleConfig
from reward.pcqa.ensemble import PCQAEnsemble
from reward.pcqa.presets import tiny_config
from reward.transfer import device_constant, to_device
from reward.validation import assert_video_values, require
from sync_checks import (
    HostSyncRecorder,
    cpu_backward_scalar_reads,
    fake_cuda_forward,
    forward_backward_in_sync_error_mode,
    fresh_caches,
)

PROMPTS = ["a red fox running in the snow", "a cat asleep on a sofa"]
#: Every built-in reward that builds offline in seconds, plus a tiny PCQA ensemble (the ensemble has no tiny preset).
BUILTIN_TINY = ["aigc-vqa-tiny", "brightness", "colorfulness", "dover-tiny", "imagereward-tiny", "pcqa-tiny", "pcqa-ensemble-tiny"]
#: [B, T, 3, H, W]: 48-pixel frames take DOVER's small-video path (upsampling before the fragments) too.
SHAPE = (2, 8, 3, 48, 48)


#: dover-tiny with small views (its default ones are DOVER's 224-pixel, 16-frame views: ~10 s per CPU backward).
SMALL_DOVER_VIEWS = dict(
    technical_clip_len=4, technical_aligned=4, technical_fragments=2, aesthetic_clip_len=4, aesthetic_t_frag=4,
    aesthetic_size=64,
)


def _build(name: str, *, small_views: bool = False) -> reward.VideoReward:
    torch.manual_seed(0)
    if name == "pcqa-ensemble-tiny":
        ensemble = PCQAEnsemble(PCQAEnsembleConfig(members=[tiny_config(), tiny_config(num_frames=2)], flip_tta=True))
        return ensemble.eval()
    overrides = SMALL_DOVER_VIEWS if small_views and name == "dover-tiny" else {}
    return reward.load(name, pretrained=False, **overrides)


def test_every_builtin_reward_is_covered():
    tiny = {name for name in reward.list_rewards() if {"tiny", "simple"} & set(reward.reward_spec(name).tags)}
    assert tiny == set(BUILTIN_TINY) - {"pcqa-ensemble-tiny"}


@pytest.mark.parametrize("name", BUILTIN_TINY)
def test_forward_on_a_gpu_waits_for_nothing(name):
    output = fake_cuda_forward(_build(name), SHAPE, PROMPTS)
    assert output.score.shape == (2,) and output.score.device.type == "cuda"


@pytest.mark.parametrize("name", BUILTIN_TINY)
def test_backward_reads_no_scalar(name):
    assert cpu_backward_scalar_reads(_build(name, small_views=True), SHAPE, PROMPTS) == {}


def test_the_recorder_catches_what_stalls_a_gpu_and_passes_what_does_not():
    from torch._subclasses.fake_tensor import FakeTensorMode

    fake = FakeTensorMode(allow_non_fake_inputs=True)
    with fake:
        on_device = torch.rand(4, device="cuda")
    stalls = [
        lambda: float(on_device.max()),
        lambda: bool((on_device > 0).all()),
        lambda: on_device.nonzero(),
        lambda: on_device[on_device > 0.5],
        lambda: on_device.cpu(),
        lambda: torch.tensor([1.0, 2.0], device="cuda"),
        lambda: torch.arange(3).to("cuda"),
    ]
    for stall in stalls:
        with fake, HostSyncRecorder(), pytest.raises(AssertionError, match="host synchronisation"):
            stall()
    with fresh_caches():
        with fake:
            device_constant((0.5, 0.25), torch.device("cuda"))  # built once (a copy), then kept
        with fake, HostSyncRecorder():
            host = torch.arange(5)
            assert int(host.max()) == 4  # host values are real and free to read
            to_device(host, "cuda")
            device_constant((0.5, 0.25), torch.device("cuda"))
            torch._assert_async((on_device >= 0).all(), "device-side check")
            require(on_device >= 0, "device-side check")


def test_device_checks_raise_the_clear_message_on_cpu():
    with pytest.raises(RuntimeError, match="NaN or Inf"):
        assert_video_values(torch.full((1, 1, 3, 4, 4), float("nan")))
    with pytest.raises(RuntimeError, match=r"must be in \[0, 1\]"):
        assert_video_values(torch.full((1, 1, 3, 4, 4), 3.0))
    assert_video_values(torch.rand(1, 1, 3, 4, 4))
    with pytest.raises(RewardInputError, match="must be positive"):
        require(torch.tensor([1, -1]) > 0, "must be positive")


def test_parameter_free_rewards_run_where_their_input_is():
    videos = torch.rand(2, 3, 3, 8, 8, dtype=torch.float64)
    assert reward.load("brightness")._tensor_device() is None
    assert reward.load("colorfulness")(videos).score.dtype == torch.float64


needs_real_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a real CUDA GPU")


@pytest.mark.cuda
@needs_real_cuda
@pytest.mark.parametrize("name", BUILTIN_TINY)
def test_cuda_forward_backward_in_sync_error_mode(name):
    model = _build(name).cuda().requires_grad_(False)  # frozen, as in generator fine-tuning: gradients reach the pixels
    forward_backward_in_sync_error_mode(model, torch.rand(*SHAPE, device="cuda"), PROMPTS)


@pytest.mark.cuda
@needs_real_cuda
def test_cuda_bad_values_trip_a_device_assertion():
    """A device-side assertion ends the CUDA context, so it runs in a child process."""
    code = (
        "import torch, reward\n"
        "model = reward.load('dover-tiny', pretrained=False).cuda()\n"
        "model.score(torch.full((1, 4, 3, 32, 32), float('nan'), device='cuda'))\n"
        "torch.cuda.synchronize()\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=root, env=env)
    assert result.returncode != 0
    assert "device-side assert" in result.stderr or "NaN or Inf" in result.stderr, result.stderr[-2000:]
