"""Every attention in the rewards runs torch's fused kernel (scaled_dot_product_attention), with the results
of the eager formula: Swin-3D windows, BLIP (transformers' "sdpa"), PCQA's timm backbones and open_clip towers."""
from __future__ import annotations

import pytest
import torch

import reward
from reward.blocks.blip import BlipEncoders, BlipSpec

#: The CPU fused kernel, and the op an unfused (matmul + softmax) attention or SDPA's math fallback runs.
FUSED_OP = "aten::_scaled_dot_product_flash_attention_for_cpu"
SOFTMAX_OP = "aten::_softmax"

SMALL_BLIP = BlipSpec(
    vision_width=32, vision_depth=2, vision_heads=2, vision_mlp=64, image_size=64, patch_size=16,
    text_width=32, text_depth=2, text_heads=2, text_intermediate=64, vocab_size=100,
    hidden_dropout=0.0, attention_dropout=0.0,
)


def profiled_ops(step) -> set[str]:
    """Names of the ATen ops ``step()`` runs."""
    with torch.profiler.profile() as profile:
        step()
    return {event.key for event in profile.key_averages()}


def test_swin_window_gathers_equal_roll_and_partition_and_invert_each_other():
    from reward.blocks.swin3d import WindowLayout, partition_windows

    size, window, shift = (3, 9, 16), (2, 7, 7), (1, 3, 3)  # padded to (4, 14, 21)
    layout = WindowLayout.build(size, window, shift, False, torch.device("cpu"))
    assert layout.pads == (1, 5, 5) and layout.gate is None and layout.shift_mask is not None
    x = torch.randn(2, *size, 5)
    padded = torch.nn.functional.pad(x, (0, 0, 0, 5, 0, 5, 0, 1))
    expected = partition_windows(torch.roll(padded, (-1, -3, -3), (1, 2, 3)), window)
    windows = padded.reshape(2, -1, 5).index_select(1, layout.order).view_as(expected)
    assert torch.equal(windows, expected)
    assert torch.equal(windows.reshape(2, -1, 5).index_select(1, layout.restore).view_as(x), x)


@pytest.mark.parametrize("batch", [1, 3])  # batch 3: one kernel call per item, the per-window mask shared
def test_swin_attention_runs_the_fused_kernel_and_equals_eager_attention(batch):
    from reward.blocks.swin3d import WindowAttention3D, WindowLayout

    torch.manual_seed(0)
    attention = WindowAttention3D(dim=8, num_heads=2, window=(2, 7, 7), fragment_bias=True).requires_grad_(False)
    layout = WindowLayout.build((2, 14, 14), (2, 7, 7), (1, 3, 3), True, torch.device("cpu"))
    x = torch.randn(batch, 4, 98, 8, requires_grad=True)
    ops = profiled_ops(lambda: attention(x, layout))
    assert FUSED_OP in ops and SOFTMAX_OP not in ops
    q, k, v = attention.qkv(x).view(batch, 4, 98, 3, 2, 4).permute(3, 0, 1, 4, 2, 5)
    probs = ((q @ k.transpose(-2, -1)) * 4**-0.5 + attention.attention_mask(layout, 98)).softmax(-1)
    expected = attention.proj((probs @ v).transpose(2, 3).reshape(batch, 4, 98, 8))
    got = attention(x, layout)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(got)
    grad, = torch.autograd.grad((got * weights).sum(), x)
    expected_grad, = torch.autograd.grad((expected * weights).sum(), x)
    torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-5)


def _blip_features(blip: BlipEncoders, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return blip.encode_text(ids, mask, blip.encode_image(pixels))


def test_blip_runs_transformers_sdpa_attention_with_the_eager_results_and_gradients():
    torch.manual_seed(0)
    blip = BlipEncoders(SMALL_BLIP).eval().requires_grad_(False)
    assert blip.attention_implementation == "sdpa"
    assert blip.vision_model.config._attn_implementation == blip.text_encoder.config._attn_implementation == "sdpa"
    pixels = torch.randn(2, 3, 64, 64, requires_grad=True)
    ids = torch.randint(0, 100, (2, 9))
    mask = torch.ones(2, 9)
    mask[1, 5:] = 0  # padded prompt: the additive padding mask reaches the fused kernel
    ops = profiled_ops(lambda: _blip_features(blip, pixels, ids, mask))
    assert FUSED_OP in ops and SOFTMAX_OP not in ops
    fused = _blip_features(blip, pixels, ids, mask)
    fused_grad, = torch.autograd.grad(fused.square().sum(), pixels)
    blip.set_attention_implementation("eager")
    assert SOFTMAX_OP in profiled_ops(lambda: _blip_features(blip, pixels, ids, mask))  # transformers' own code
    eager = _blip_features(blip, pixels, ids, mask)
    eager_grad, = torch.autograd.grad(eager.square().sum(), pixels)
    torch.testing.assert_close(fused, eager, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused_grad, eager_grad, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown attention implementation 'flash'"):
        blip.set_attention_implementation("flash")


def test_pcqa_timm_attention_is_fused_whatever_timm_was_told(monkeypatch):
    import timm.layers.config

    monkeypatch.setattr(timm.layers.config, "_USE_FUSED_ATTN", 0)  # as TIMM_FUSED_ATTN=0 would
    model = reward.load("pcqa-tiny", pretrained=False, backbone="test_vit", backbone_kwargs={"img_size": 64})
    flags = [m.fused_attn for m in model.scorer.vision.model.modules() if hasattr(m, "fused_attn")]
    assert flags and all(flags)
    videos = torch.rand(1, 2, 3, 64, 64)
    ops = profiled_ops(lambda: model.score(videos, ["a red fox"]))
    assert FUSED_OP in ops and SOFTMAX_OP not in ops


@pytest.mark.parametrize(
    ("name", "attention_in_backward"),
    [("dover-tiny", True), ("aigc-vqa-tiny", True), ("imagereward-tiny", True), ("pcqa-tiny", False)],  # PCQA: frozen text towers only
)
def test_no_unfused_attention_in_the_tiny_rewards_forward_and_backward(name, attention_in_backward):
    model = reward.load(name, pretrained=False).requires_grad_(False)
    videos = torch.rand(2, 4, 3, 64, 64, requires_grad=True)

    def forward_backward() -> None:
        model(videos, ["a red fox", "snow"]).score.sum().backward()

    ops = profiled_ops(forward_backward)
    assert FUSED_OP in ops and (f"{FUSED_OP}_backward" in ops) == attention_in_backward
    assert SOFTMAX_OP not in ops
