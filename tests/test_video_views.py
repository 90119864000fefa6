"""DOVER views: bit-exact parity with the reference on uint8/255 videos, gradients, metadata, errors."""
from __future__ import annotations

import hashlib

import pytest
import torch

from reward.errors import RewardInputError
from reward.video import (
    aesthetic_resize,
    aesthetic_view,
    fragment_grid,
    fragment_offsets,
    resize_frames,
    sample_fragments,
    technical_view,
    upsample_scale,
    upsample_small_video,
)
from reward.video.normalize import DOVER_MEAN, DOVER_STD, normalize_levels


@pytest.fixture(scope="module")
def golden(golden_dir):
    return torch.load(golden_dir / "dover_small_golden.pt", weights_only=True)


def as_video(clip_uint8: torch.Tensor) -> torch.Tensor:
    """Reference layout uint8 [3, T, H, W] -> reward batch [1, T, 3, H, W] floats u8/255."""
    return (clip_uint8.permute(1, 0, 2, 3).float() / 255)[None]


def as_levels(clip_uint8: torch.Tensor) -> torch.Tensor:
    """Reference layout uint8 [3, T, H, W] -> [1, T, 3, H, W] float levels, the layout our functions return."""
    return clip_uint8.permute(1, 0, 2, 3).float()[None]


def sha256(view: torch.Tensor) -> str:
    assert view.dtype == torch.float32 and view.is_contiguous()
    return hashlib.sha256(view.detach().numpy().tobytes()).hexdigest()


@pytest.mark.golden
def test_fragments_match_reference_with_replayed_and_explicit_offsets(golden):
    clip = as_video(golden["raw_video_uint8"])[:, golden["frame_inds_technical"]]
    offsets = fragment_offsets(252, 288, 2, generator=torch.Generator().manual_seed(golden["meta"]["frag_seed"]))
    assert torch.equal(offsets.h, golden["frag_offsets_h"]) and torch.equal(offsets.w, golden["frag_offsets_w"])
    assert torch.equal(fragment_grid(252), golden["frag_grid_h"]) and torch.equal(fragment_grid(288), golden["frag_grid_w"])
    expected = as_levels(golden["fragments_technical_uint8"])
    assert torch.equal(sample_fragments(clip, offsets, aligned=8), expected)
    generator = torch.Generator().manual_seed(golden["meta"]["frag_seed"])
    assert torch.equal(sample_fragments(clip, aligned=8, generator=generator), expected)
    variant = (golden["variant_frag_offsets_h"], golden["variant_frag_offsets_w"])
    assert torch.equal(
        sample_fragments(clip[:, :4], variant, aligned=golden["variant_aligned"]),
        as_levels(golden["variant_fragments_uint8"]),
    )


@pytest.mark.golden
@pytest.mark.parametrize("threads", [1, 2])
def test_small_video_upsample_path_matches_reference(golden, threads):
    small = as_video(golden["small_video_uint8"])
    scale = upsample_scale(64, 81)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # torch's own bilinear kernel rounds differently on one thread
    try:
        assert torch.equal(upsample_small_video(small, scale), as_levels(golden["small_upsampled_uint8"]))
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(fragment_grid(64), golden["small_frag_grid_h"]) and torch.equal(fragment_grid(81), golden["small_frag_grid_w"])
    offsets = fragment_offsets(64, 81, 1, generator=torch.Generator().manual_seed(golden["meta"]["small_frag_seed"]))
    assert torch.equal(offsets.h, golden["small_frag_offsets_h"]) and torch.equal(offsets.w, golden["small_frag_offsets_w"])
    fragments = sample_fragments(small, aligned=golden["small_aligned"])
    assert torch.equal(fragments, as_levels(golden["small_fragments_uint8"]))
    assert torch.equal(aesthetic_resize(small), as_levels(golden["small_resized_uint8"]))


@pytest.mark.golden
def test_views_reproduce_reference_normalised_bytes(golden):
    video = as_video(golden["raw_video_uint8"])
    technical = technical_view(
        video, clip_len=16, num_clips=1, frame_interval=1, aligned=8,
        generator=torch.Generator().manual_seed(golden["meta"]["frag_seed"]),
    )
    assert torch.equal(technical.frame_indices, golden["frame_inds_technical"])
    assert list(technical.pixels.shape) == golden["view_technical_shape"]
    assert sha256(technical.pixels) == golden["view_technical_sha256"]
    # per-video offsets for a batch: video 0 still replays the reference draw
    pair = technical_view(
        video.expand(2, -1, -1, -1, -1), clip_len=16, num_clips=1, frame_interval=1, aligned=8,
        generator=torch.Generator().manual_seed(golden["meta"]["frag_seed"]),
    )
    assert torch.equal(pair.offsets.h[0], golden["frag_offsets_h"]) and torch.equal(pair.offsets.w[0], golden["frag_offsets_w"])
    assert torch.equal(pair.pixels[0], technical.pixels[0]) and not torch.equal(pair.pixels[1], pair.pixels[0])
    aesthetic = aesthetic_view(video, clip_len=16, t_frag=16, frame_interval=2)
    assert torch.equal(aesthetic.frame_indices, golden["frame_inds_aesthetic"])
    assert torch.equal(aesthetic_resize(video[:, aesthetic.frame_indices]), as_levels(golden["resized_aesthetic_uint8"]))
    assert list(aesthetic.pixels.shape) == golden["view_aesthetic_shape"]
    assert sha256(aesthetic.pixels) == golden["view_aesthetic_sha256"]
    # the normalisation alone equals the reference lookup table on every level
    levels = torch.arange(256, dtype=torch.float32).expand(3, 256)
    assert torch.equal(normalize_levels(levels, channel_dim=0), golden["norm_lut"])


@pytest.mark.golden
def test_metadata_maps_every_fragment_back_to_its_input_pixels(golden):
    video = as_video(golden["raw_video_uint8"])
    view = technical_view(video, clip_len=16, num_clips=1, frame_interval=1, aligned=8,
                          generator=torch.Generator().manual_seed(99))
    boxes = view.fragment_boxes().long()  # [1, 7, 7, 2, 4] at scale 1
    fragments = sample_fragments(video[:, view.frame_indices], view.offsets, aligned=8)
    for i, j, chunk in [(0, 0, 0), (3, 5, 1), (6, 6, 1)]:
        top, left, bottom, right = boxes[0, i, j, chunk].tolist()
        frame = int(view.frame_indices[chunk * 8])
        source = golden["raw_video_uint8"][:, frame, top:bottom, left:right].float()
        assert torch.equal(fragments[0, chunk * 8, :, 32 * i:32 * i + 32, 32 * j:32 * j + 32], source)


def test_fragment_gradients_reach_exactly_the_sampled_pixels():
    video = torch.rand(2, 4, 3, 256, 300, requires_grad=True)
    view = technical_view(video, clip_len=2, num_clips=2, frame_interval=1, aligned=2,
                          generator=torch.Generator().manual_seed(0))
    assert view.pixels.shape == (4, 3, 2, 224, 224)
    assert not torch.equal(view.offsets.h[0], view.offsets.h[1])  # per-video draws
    view.pixels.sum().backward()
    sampled = torch.zeros_like(video, dtype=torch.bool)
    boxes = view.fragment_boxes().long()
    for b in range(2):
        for position, frame in enumerate(view.frame_indices.tolist()):
            for top, left, bottom, right in boxes[b, :, :, position // 2].reshape(-1, 4).tolist():
                sampled[b, frame, :, top:bottom, left:right] = True
    grad = video.grad
    assert torch.isfinite(grad).all()
    assert (grad[sampled] != 0).all() and (grad[~sampled] == 0).all()
    # straight-through: the quantised view has the gradient of the continuous one
    continuous = video.detach().requires_grad_()
    technical_view(continuous, clip_len=2, num_clips=2, frame_interval=1, aligned=2, offsets=view.offsets,
                   quantize=False).pixels.sum().backward()
    assert torch.equal(continuous.grad, grad)


def test_resize_and_upsample_gradients_flow_to_pixels():
    large = torch.rand(1, 3, 3, 240, 260, requires_grad=True)
    aesthetic_view(large, clip_len=3, t_frag=3, frame_interval=1).pixels.square().sum().backward()
    assert torch.isfinite(large.grad).all() and (large.grad != 0).all()

    small = torch.rand(1, 2, 3, 64, 81, requires_grad=True)
    view = technical_view(small, clip_len=2, num_clips=1, frame_interval=1, aligned=2)
    assert view.scale == 3.5
    view.pixels.sum().backward()
    assert torch.isfinite(small.grad).all()
    # as in the reference, fragments come from the top-left 64x81 of the 224x283 upsampled frame only
    assert (small.grad[..., :18, :23] != 0).all() and (small.grad[..., 20:, :] == 0).all()
    assert torch.allclose(view.fragment_boxes()[0, 6, 6, 0], torch.tensor([32, 49, 64, 81], dtype=torch.float64) / 3.5)



def test_resize_frames_resizes_each_frame_and_keeps_frames_of_the_target_size():
    video = torch.rand(2, 3, 3, 10, 14)
    resized = resize_frames(video, (8, 6))
    assert resized.shape == (2, 3, 3, 8, 6)
    per_frame = torch.nn.functional.interpolate(video[1, 2:], size=(8, 6), mode="bilinear", antialias=True, align_corners=False)
    assert torch.equal(resized[1, 2:], per_frame)
    assert resize_frames(video, (10, 14)) is video


def test_normalize_levels_takes_other_statistics_on_the_scale_of_the_input():
    pixels = torch.rand(2, 3, 4, 5)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    expected = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.equal(normalize_levels(pixels, channel_dim=1, mean=mean, std=std), expected)
    levels = pixels * 255
    assert torch.equal(
        normalize_levels(levels, channel_dim=1), normalize_levels(levels, channel_dim=1, mean=DOVER_MEAN, std=DOVER_STD)
    )

def test_unquantised_views_stay_close_and_views_handle_edge_sizes():
    video = torch.rand(1, 5, 3, 230, 250)
    exact = aesthetic_view(video, clip_len=4, t_frag=4, frame_interval=1).pixels
    smooth = aesthetic_view(video, clip_len=4, t_frag=4, frame_interval=1, quantize=False).pixels
    assert (exact - smooth).abs().max() <= 1.0 / 57  # at most one uint8 level over the smallest std
    single = technical_view(torch.rand(1, 1, 3, 20, 30), clip_len=1, num_clips=1, frame_interval=1, aligned=32)
    assert single.pixels.shape == (1, 3, 1, 224, 224) and single.aligned == 1  # T = 1 and sides < 32 px
    short = technical_view(torch.rand(1, 3, 3, 224, 224), clip_len=32, num_clips=3, frame_interval=2, aligned=32)
    assert short.pixels.shape == (3, 3, 32, 224, 224)  # 3 frames wrap around to fill 3 clips of 32


def test_views_refuse_inconsistent_explicit_choices():
    video = torch.rand(1, 8, 3, 256, 256)
    options = dict(clip_len=4, num_clips=1, frame_interval=1, aligned=4)
    with pytest.raises(RewardInputError, match="must hold 4 indices"):
        technical_view(video, frame_indices=torch.arange(3), **options)
    with pytest.raises(RewardInputError, match=r"must lie in \[0, 8\)"):
        technical_view(video, frame_indices=torch.tensor([0, 1, 2, 8]), **options)
    with pytest.raises(RewardInputError, match="multiple of aligned"):
        technical_view(video, clip_len=4, num_clips=1, frame_interval=1, aligned=3)
    with pytest.raises(RewardInputError, match=r"must have shape \[7, 7, 1\]"):
        technical_view(video, offsets=(torch.zeros(7, 7, 2), torch.zeros(7, 7, 2)), **options)
    with pytest.raises(RewardInputError, match="outside the 256x256 frame"):
        technical_view(video, offsets=(torch.full((7, 7, 1), 40), torch.zeros(7, 7, 1)), **options)
    with pytest.raises(RewardInputError, match="multiple of t_frag"):
        aesthetic_view(video, clip_len=6, t_frag=4, frame_interval=1)
