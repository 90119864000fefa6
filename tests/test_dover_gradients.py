"""Activation checkpointing in both DOVER backbones; drop-path; window padding and clipping.

fp32 / bf16 pixel gradients through the whole reward are checked in test_dover_reward.py.
"""
from __future__ import annotations

import pytest
import torch

from reward.blocks.swin3d import Swin3DConfig, SwinTransformer3D
from reward.precision import backbone_autocast, full_precision

from dover_helpers import small_branches

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    modules = small_branches()
    for module in modules.values():
        module.eval()
    return modules


def branch_score_and_grad(parts, branch: str, pixels: torch.Tensor, dtype: torch.dtype | None):
    pixels = pixels.clone().requires_grad_(True)
    with backbone_autocast(CPU, dtype):
        features = parts[f"{branch}_backbone"](pixels)
    with full_precision(CPU):
        score = parts[f"{branch}_head"](features.float()).mean()
    score.backward()
    return score.detach(), pixels.grad


@pytest.fixture(scope="module")
def pixels():
    return torch.randn(1, 3, 2, 224, 224, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def fp32_results(parts, pixels):
    return {branch: branch_score_and_grad(parts, branch, pixels, None) for branch in ("technical", "aesthetic")}


@pytest.mark.parametrize("branch", ["technical", "aesthetic"])
def test_checkpointing_gives_the_same_gradients(parts, pixels, fp32_results, branch):
    backbone = parts[f"{branch}_backbone"]
    plain_score, plain_grad = fp32_results[branch]
    assert torch.isfinite(plain_grad).all() and plain_grad.abs().sum() > 0
    backbone.gradient_checkpointing = True
    try:
        ckpt_score, ckpt_grad = branch_score_and_grad(parts, branch, pixels, None)
    finally:
        backbone.gradient_checkpointing = False
    assert torch.equal(plain_score, ckpt_score)
    torch.testing.assert_close(ckpt_grad, plain_grad, atol=1e-7, rtol=1e-5)


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    swin = SwinTransformer3D(Swin3DConfig(embed_dim=8, depths=(2, 2), num_heads=(1, 2), drop_path_rate=0.9, frag_biases=(True, False)))
    x = torch.randn(2, 3, 4, 56, 56)
    with torch.no_grad():
        swin.eval()
        assert torch.equal(swin(x), swin(x))
        swin.train()
        assert not torch.equal(swin(x), swin(x))


def test_odd_sizes_pad_and_clip_windows():
    """Sizes that are not window multiples (padding) or smaller than the window (clipping) still run."""
    swin = SwinTransformer3D(Swin3DConfig(embed_dim=8, depths=(2, 2), num_heads=(1, 2), frag_biases=(True, False))).eval()
    with torch.no_grad():
        out = swin(torch.randn(1, 3, 3, 60, 92))
    assert out.shape == (1, 16, 2, 8, 12)
    assert torch.isfinite(out).all()


def test_tables_first_built_in_inference_mode_still_allow_autograd():
    swin = SwinTransformer3D(Swin3DConfig(embed_dim=8, depths=(2,), num_heads=(1,), frag_biases=(True,))).eval()
    x = torch.randn(1, 3, 2, 44, 44)  # a size no other test uses, so its tables are built here
    with torch.inference_mode():
        swin(x)
    x.requires_grad_(True)
    swin(x).sum().backward()
    assert torch.isfinite(x.grad).all()
