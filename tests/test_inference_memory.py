"""Scoring without autograd takes memory-saving routes (DOVER's technical clips one at a time, Swin windows attended
in groups of bounded mask size, uint8 clips taken as levels): each must give the results of the plain route."""
from __future__ import annotations

import torch

from reward.blocks import swin3d
from reward.blocks.swin3d import WindowAttention3D, WindowLayout
from reward.dover.model import DoverReward, dover_tiny_config
from reward.video.quantize import frame_levels


def test_windows_attended_in_groups_equal_one_call(monkeypatch):
    torch.manual_seed(0)
    attention = WindowAttention3D(dim=8, num_heads=2, window=(2, 7, 7), fragment_bias=True).eval()
    layout = WindowLayout.build((4, 14, 14), (2, 7, 7), (1, 3, 3), True, torch.device("cpu"))
    x = torch.randn(2, 8, 98, 8)
    with torch.no_grad():
        whole = attention(x, layout)
        per_window = 2 * 98 * 98 * 4
        monkeypatch.setattr(swin3d, "MASK_CHUNK_BYTES", 3 * per_window)  # groups of 3, 3 and 2 windows
        assert attention.window_groups(layout, 8, 98) == [slice(0, 3), slice(3, 6), slice(6, 9)]
        grouped = attention(x, layout)
    assert torch.equal(grouped, whole)
    assert attention.window_groups(layout, 8, 98) == [slice(None)]  # with autograd: one call, as in training


def test_dover_scores_its_technical_clips_one_at_a_time_with_the_batched_result():
    torch.manual_seed(0)
    model = DoverReward(dover_tiny_config(technical_num_clips=3)).eval()
    videos = torch.rand(2, 40, 3, 64, 80)
    calls = []
    model.technical_backbone.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    batched = model(videos).score  # autograd on: the 2 x 3 clips in one call
    scored = model.score(videos).score
    assert calls == [6, 1, 1, 1, 1, 1, 1]
    torch.testing.assert_close(scored, batched.detach(), rtol=0, atol=1e-6)


def test_uint8_frames_are_their_own_snapped_levels():
    levels = torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 16, 16).expand(1, 2, 3, 16, 16)
    assert torch.equal(frame_levels(levels, quantize=True), frame_levels(levels.float() / 255, quantize=True))
    assert torch.equal(frame_levels(levels, quantize=False), frame_levels(levels.float() / 255, quantize=False))
