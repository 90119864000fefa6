"""``explain``: files of the documented size, and the technical map drawn where its fragments were cut."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reward.base import VideoReward
from reward.explain import explain_video
from reward.explain.draw import UNSEEN_DIM, heat_colours
from reward.explain.maps import nearest_positions, values_per_position
from reward.explain.render import panel_frames, shown_frames
from reward.output import RewardOutput
from reward.simple import SimpleConfig, StatisticReward
from reward.video.io import read_video
from reward.video.sampling import uniform_frame_indices
from reward.video.views import aesthetic_view, technical_view


class _Sharpness(VideoReward):
    """A deterministic stand-in with DOVER's views and map layout: each fragment's (or aesthetic
    cell's) score is minus its pixel spread, so a noisy region scores low where it was seen."""

    architecture = "test-sharpness"
    requires_prompts = False
    component_names = ("technical", "aesthetic")

    def __init__(self):
        super().__init__({})

    def _forward(self, videos, prompts, *, return_maps=False):
        batch = videos.shape[0]
        technical = technical_view(videos, clip_len=8, num_clips=2, frame_interval=1, aligned=4)
        aesthetic = aesthetic_view(videos, clip_len=4, t_frag=4, frame_interval=1)
        cells = technical.pixels.unflatten(-2, (7, 32)).unflatten(-1, (7, 32))  # [N, 3, T, 7, 32, 7, 32]
        technical_map = -cells.std(dim=(1, 4, 6)).unflatten(1, (4, 2)).mean(2)  # [N, 4, 7, 7]: T' = 4
        blocks = aesthetic.pixels.unflatten(-2, (7, 32)).unflatten(-1, (7, 32))
        aesthetic_map = -blocks.std(dim=(1, 2, 4, 6))[:, None, None]  # [B, 1, 1, 7, 7]
        technical_map = technical_map.reshape(batch, 2, 4, 7, 7)
        components = {"technical": technical_map.flatten(1).mean(1), "aesthetic": aesthetic_map.flatten(1).mean(1)}
        output = RewardOutput(score=components["technical"] + components["aesthetic"], components=components)
        if return_maps:
            output.extras.update(
                technical_map=technical_map,
                technical_frame_indices=technical.frame_indices,
                fragment_boxes=technical.fragment_boxes(),
                aesthetic_map=aesthetic_map,
                aesthetic_frame_indices=aesthetic.frame_indices,
            )
        return output


def _video_with_noisy_corner(frames=10, size=448):
    """Smooth gradient frames with strong noise in the top-left 192x192 corner."""
    ramp = torch.linspace(0.2, 0.8, size)
    video = (ramp[None, None, None, :] * 0.5 + ramp[None, None, :, None] * 0.5).expand(frames, 3, size, size).clone()
    generator = torch.Generator().manual_seed(0)
    video[:, :, :192, :192] = torch.rand(frames, 3, 192, 192, generator=generator)
    return video


def test_long_videos_are_shown_at_64_evenly_spread_frames():
    assert shown_frames(20).tolist() == list(range(20))
    frames = shown_frames(200)
    assert len(frames) == 64 and frames[0] >= 0 and frames[-1] <= 199 and bool((frames.diff() >= 3).all())


def test_sampled_positions_map_to_clip_time_cells_and_nearest_frames():
    score_map = torch.arange(2 * 4 * 1 * 1).float().reshape(2, 4, 1, 1)  # 2 clips, 4 time cells
    values = values_per_position(score_map, 16)[:, 0, 0]
    assert values.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]
    assert nearest_positions(torch.tensor([0, 4, 8]), torch.tensor([0, 1, 2, 3, 9])).tolist() == [0, 0, 0, 1, 2]


def test_explain_paints_the_technical_map_where_the_fragments_were_cut(tmp_path):
    video = _video_with_noisy_corner()
    result = explain_video(_Sharpness(), video, "a gradient", tmp_path, reward_name="sharpness")
    heat = result.maps.technical  # [frames, 256, 256]: the 448 px frame at 256 px
    scale = 256 / 448
    # 448 px: 7 cells of 64 px, fragments centred in their cell: [64 i + 16, 64 i + 48)
    centres = [round((64 * i + 32) * scale) for i in range(7)]
    gaps = [round(64 * i * scale) + 1 for i in range(7)]
    assert torch.isfinite(heat[:, centres][:, :, centres]).all()
    assert torch.isnan(heat[:, gaps][:, :, centres]).all() and torch.isnan(heat[:, centres][:, :, gaps]).all()
    inside = heat[:, centres[:3]][:, :, centres[:3]]
    outside = heat[:, centres[3:]][:, :, centres[3:]]
    assert inside.max() < outside.min()  # the noisy corner scores low exactly where its fragments sit

    sheet = np.asarray(Image.open(result.png).convert("RGB")).astype(int)
    low, high = heat_colours(np.array([0.0, 1.0]))
    top = 64 + centres[1]  # first key frame, technical row, fragment (1, 1) inside the noisy corner
    noisy, clean = sheet[top, centres[1]], sheet[64 + centres[5], centres[5]]
    assert np.abs(noisy - low).sum() < np.abs(noisy - high).sum()
    assert np.abs(clean - high).sum() < np.abs(clean - low).sum()
    plain = panel_frames(video, result.maps.frames[:1])[0].astype(int)
    gap = sheet[64 + gaps[5], centres[5]]  # between fragments: the frame, darkened
    assert np.abs(gap - np.round(plain[gaps[5], centres[5]] * UNSEEN_DIM)).max() <= 1


def test_explain_writes_a_png_and_an_mp4_of_the_documented_size(tmp_path):
    video = _video_with_noisy_corner(frames=6, size=448)[:, :, :, :320]  # 448 x 320: panel 256 x 358
    result = explain_video(_Sharpness(), video, "a gradient", tmp_path / "out", name="clip")
    assert result.png == tmp_path / "out" / "clip.png" and result.mp4 == tmp_path / "out" / "clip.mp4"
    panel_height = 2 * round(256 * 448 / 320 / 2)
    assert Image.open(result.png).size == (4 * 256, 64 + 2 * panel_height + 2 * 56 + 18)
    movie = read_video(result.mp4)
    assert tuple(movie.shape) == (6, 3, 64 + panel_height + 2 * 56 + 18, 2 * 256)
    assert set(result.scores) == {"score", "technical", "aesthetic"}


class _FrameScores(VideoReward):
    """Per-frame scores only (as PCQA can report): the mean brightness of every second frame."""

    architecture = "test-frame-scores"
    requires_prompts = False
    component_names = ("quality",)

    def __init__(self):
        super().__init__({})

    def _forward(self, videos, prompts, *, return_maps=False):
        sampled = torch.arange(0, videos.shape[1], 2)
        per_frame = videos[:, sampled].mean(dim=(2, 3, 4))
        output = RewardOutput(score=per_frame.mean(1), components={"quality": per_frame.mean(1)})
        if return_maps:
            output.extras.update(frame_scores=per_frame, frame_score_indices=sampled)
        return output


def test_explain_draws_per_frame_scores_of_a_reward_without_maps(tmp_path):
    video = torch.linspace(0, 1, 6).view(6, 1, 1, 1).expand(6, 3, 32, 64).contiguous()
    result = explain_video(_FrameScores(), video, None, tmp_path)
    assert result.maps.technical is None and result.maps.aesthetic is None
    assert result.maps.curves["frame contribution"].tolist() == pytest.approx([0, 0, 0.4, 0.4, 0.8, 0.8], abs=1e-6)
    assert Image.open(result.png).size == (4 * 256, 64 + 128 + 56 + 18)
    assert tuple(read_video(result.mp4).shape) == (6, 3, 64 + 128 + 56 + 18, 256)


def test_a_reward_without_maps_is_explained_frame_by_frame(tmp_path):
    video = torch.linspace(0, 1, 20).view(20, 1, 1, 1).expand(20, 3, 32, 64).contiguous()
    result = explain_video(StatisticReward(SimpleConfig("brightness")), video, None, tmp_path)
    assert list(result.maps.curves) == ["brightness (frame alone)"]
    scored = uniform_frame_indices(20, 16)  # at most 16 frames are scored; the others show the nearest
    expected = torch.linspace(0, 1, 20)[scored][nearest_positions(scored, torch.arange(20))]
    assert result.maps.curves["brightness (frame alone)"].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert Image.open(result.png).size == (4 * 256, 64 + 128 + 56 + 18)


def test_explaining_the_planned_frames_of_a_file_equals_explaining_the_whole_video(tmp_path):
    """A 100-frame file: explain needs the reward's frames and the 64 it shows, and reads only those."""
    import reward
    from reward.explain import explained_frames
    from video_files import write_clip

    path = write_clip(tmp_path / "long.mp4", frames=100, height=32, width=48)
    model = reward.load("aigc-vqa-tiny", pretrained=False)
    clip = read_video(path, frames=explained_frames(model))
    assert clip.num_frames == 100 and len(clip.plan) < 100
    sparse = explain_video(model, clip, "a test clip", tmp_path / "sparse")
    full = explain_video(model, read_video(path), "a test clip", tmp_path / "full")
    assert sparse.scores == pytest.approx(full.scores, abs=1e-6)
    assert torch.equal(sparse.maps.frames, full.maps.frames)
    for name in ("technical", "aesthetic"):
        torch.testing.assert_close(getattr(sparse.maps, name), getattr(full.maps, name), rtol=0, atol=0, equal_nan=True)
    assert sparse.maps.curves.keys() == full.maps.curves.keys()
    for name, curve in full.maps.curves.items():
        torch.testing.assert_close(sparse.maps.curves[name], curve, rtol=0, atol=1e-6)
    assert np.array_equal(np.asarray(Image.open(sparse.png)), np.asarray(Image.open(full.png)))
