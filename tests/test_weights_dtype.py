"""reward.load(name, weights_dtype=torch.bfloat16): frozen backbones stored in bf16, heads in fp32, gradients to the pixels."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import reward
from reward.precision import LOW_PRECISION_LAYERS, backbone_modules

TINY = ["dover-tiny", "aigc-vqa-tiny", "imagereward-tiny", "pcqa-tiny"]
PROMPTS = ["a red fox", "fresh snow"]


def parameter_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.mark.parametrize("name", TINY)
def test_backbones_store_their_matmul_weights_in_bf16_and_the_heads_stay_fp32(name):
    torch.manual_seed(0)
    full = reward.load(name, pretrained=False)
    half = reward.load(name, pretrained=False, weights_dtype=torch.bfloat16)
    half.load_state_dict(full.state_dict())  # the same values, rounded to bf16 where stored so
    assert half.weights_dtype == half.compute_dtype == torch.bfloat16
    backbones = backbone_modules(half)
    assert backbones
    stored = {id(p) for b in backbones for layer in b.modules() if isinstance(layer, LOW_PRECISION_LAYERS) for p in layer.parameters()}
    for parameter in half.parameters():
        assert parameter.dtype == (torch.bfloat16 if id(parameter) in stored else torch.float32)
    assert all(not p.requires_grad for b in backbones for p in b.parameters())
    assert any(p.requires_grad for p in half.parameters())  # heads (and adapters) stay trainable
    saved = parameter_bytes(full) - parameter_bytes(half)
    assert saved == sum(p.numel() * 2 for p in half.parameters() if p.dtype == torch.bfloat16)

    videos = torch.rand(2, 4, 3, 64, 64, requires_grad=True)
    out = half(videos, PROMPTS)
    assert out.score.dtype == torch.float32
    out.score.sum().backward()
    assert videos.grad is not None and torch.isfinite(videos.grad).all() and videos.grad.abs().sum() > 0
    reference = full.set_compute_dtype("bf16").score(videos.detach(), PROMPTS).score  # fp32 weights under bf16 autocast
    torch.testing.assert_close(out.score.detach(), reference, atol=2e-2, rtol=2e-2)


def test_weights_dtype_needs_a_low_precision_compute_dtype():
    with pytest.raises(ValueError, match="weights_dtype=torch.bfloat16 stores the backbones in that dtype"):
        reward.load("dover-tiny", pretrained=False, dtype="fp32", weights_dtype="bf16")
    model = reward.load("dover-tiny", pretrained=False, weights_dtype="bf16")
    with pytest.raises(ValueError, match="reload it without weights_dtype for fp32"):
        model.set_compute_dtype(None)
    with pytest.raises(ValueError, match="weights_dtype must be bf16 or fp16"):
        reward.load("dover-tiny", pretrained=False, weights_dtype="fp32")


def test_bf16_weights_round_trip_through_save_pretrained(tmp_path):
    model = reward.load("aigc-vqa-tiny", pretrained=False, weights_dtype="bf16")
    model.save_pretrained(tmp_path / "saved")
    again = reward.load("aigc-vqa-tiny", weights=tmp_path / "saved", weights_dtype="bf16")
    for (name, saved), loaded in zip(model.state_dict().items(), again.state_dict().values()):
        assert saved.dtype == loaded.dtype and torch.equal(saved, loaded), name
