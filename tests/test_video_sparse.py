"""Reading only planned frames: the same pixels as a full read on awkward files, and clear errors on bad ones."""
from __future__ import annotations

from pathlib import Path

import av
import pytest
import torch
from scoring_videos import write_corrupt, write_zero_frame_mp4
from video_files import (
    moving_frames,
    write_audio_only,
    write_clip,
    write_cut,
    write_lying_avi,
    write_rotated,
    write_still_image_as_video,
)

from reward.errors import RewardInputError, VideoReadError
from reward.frame_plan import FramePlan, SparseVideo
from reward.video import decode
from reward.video.io import read_video, write_image, write_video


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """One small file per awkward kind (45 frames of 48x64 unless named otherwise)."""
    folder = tmp_path_factory.mktemp("sparse")
    frames_folder = folder / "frames"
    frames_folder.mkdir()
    for index, pixels in enumerate(moving_frames(12, 16, 20)):
        write_image(frames_folder / f"f_{index}.png", torch.from_numpy(pixels))
    return {
        "bframes.mp4": write_clip(folder / "bframes.mp4"),
        "vfr.mp4": write_clip(folder / "vfr.mp4", variable_rate=True),
        "odd.webm": write_clip(folder / "odd.webm", height=37, width=51, codec="libvpx-vp9",
                               options={"deadline": "realtime", "cpu-used": "8"}),
        "odd444.mp4": write_clip(folder / "odd444.mp4", height=37, width=51, pix_fmt="yuv444p"),
        "tenbit.mkv": write_clip(folder / "tenbit.mkv", pix_fmt="yuv420p10le", container="matroska"),
        "rotated.mp4": write_rotated(folder / "rotated.mp4"),
        "claims_more.avi": write_lying_avi(folder / "claims_more.avi", claimed=500),
        "claims_fewer.avi": write_lying_avi(folder / "claims_fewer.avi", claimed=7),
        "cut.mp4": write_cut(folder / "cut.mp4"),
        "one_frame.mp4": write_clip(folder / "one_frame.mp4", frames=1),
        "still.mp4": write_still_image_as_video(folder / "still.mp4"),
        "clip.gif": write_video(folder / "clip.gif", torch.from_numpy(moving_frames(9, 16, 20))),
        "frames": frames_folder,
    }


def _plans(count: int) -> list[list[int]]:
    """Sparse plans that need seeks, runs and the last frame."""
    plans = [[0], [count - 1], sorted({0, count // 3, count // 2 + 1, count - 1}), list(range(1, count, 9))]
    return [[index for index in plan if index < count] for plan in plans if plan]


@pytest.mark.parametrize("name", [
    "bframes.mp4", "vfr.mp4", "odd.webm", "odd444.mp4", "tenbit.mkv", "rotated.mp4", "claims_more.avi",
    "claims_fewer.avi", "cut.mp4", "one_frame.mp4", "still.mp4", "clip.gif", "frames",
])
@pytest.mark.parametrize("seek_min_skip", [1, decode.SEEK_MIN_SKIP])
def test_planned_frames_equal_the_full_read(files, name, seek_min_skip, monkeypatch):
    monkeypatch.setattr(decode, "SEEK_MIN_SKIP", seek_min_skip)
    full = read_video(files[name])
    for indices in _plans(full.shape[0]):
        clip = read_video(files[name], frames=indices)
        assert isinstance(clip, SparseVideo) and clip.frames.dtype == torch.uint8
        assert clip.num_frames == full.shape[0] and clip.plan.indices.tolist() == sorted(set(indices))
        assert torch.equal(clip.to_float(), full[clip.plan.indices])


def test_seeks_skip_to_keyframes_only_where_enough_frames_are_skipped(files, monkeypatch):
    table = decode.stream_table(files["bframes.mp4"])
    assert table.seekable and table.trusted and table.num_frames == 45 and table.keyframes == [0, 8, 16, 24, 32, 40]
    monkeypatch.setattr(decode, "SEEK_MIN_SKIP", 4)
    assert decode._runs(table, [1, 2, 20, 21, 44]) == [(None, [1, 2]), (16, [20, 21]), (40, [44])]
    assert decode._runs(table, [1, 5, 9]) == [(None, [1, 5, 9])]


def test_frames_that_do_not_follow_the_timestamps_are_read_again_in_order(files, monkeypatch):
    """A stream whose packets and frames do not pair up is detected and indexed by decoding order instead."""
    real = decode.stream_table

    def shifted(path):
        table = real(path)
        return decode.StreamTable(table.pts[1:] + [table.pts[-1] + 1], table.keyframes, True, declared=0)

    monkeypatch.setattr(decode, "stream_table", shifted)
    monkeypatch.setattr(decode, "SEEK_MIN_SKIP", 1)
    clip = read_video(files["bframes.mp4"], frames=[3, 30])
    assert torch.equal(clip.to_float(), read_video(files["bframes.mp4"])[[3, 30]])


def test_frame_counts_come_from_the_stream_not_the_header(files):
    """avi headers claiming 500 or 7 of 45 frames, mkv without a count, and an mp4 cut after 60% of its bytes
    (its header still lists all 45): the plan is made for the frames a full read gives."""
    with av.open(str(files["claims_more.avi"])) as container:
        assert container.streams.video[0].frames == 500
    with av.open(str(files["cut.mp4"])) as container:
        assert container.streams.video[0].frames == 45
    for name in ("claims_more.avi", "claims_fewer.avi", "tenbit.mkv", "cut.mp4"):
        full = read_video(files[name])
        clip = read_video(files[name], frames=lambda count: [count - 1])
        assert clip.num_frames == full.shape[0] and torch.equal(clip.to_float()[0], full[-1])
    assert read_video(files["cut.mp4"]).shape[0] < 45


def test_rotation_tags_are_kept_as_metadata_and_frames_read_as_stored(files):
    with av.open(str(files["rotated.mp4"])) as container:
        assert next(container.decode(video=0)).rotation == -90
    clip = read_video(files["rotated.mp4"], frames=[4])
    assert clip.frames.shape == (1, 3, 48, 64)  # stored 64 wide; turned upright it would be 48 wide
    # (not compared with bframes.mp4: x264 under load does not always encode the same frames twice)
    assert torch.equal(clip.to_float(), read_video(files["rotated.mp4"])[[4]])


def test_ten_bit_and_444_pixels_are_read_as_8_bit_rgb(files):
    expected = torch.from_numpy(moving_frames(45, 48, 64)[10]).permute(2, 0, 1).float()
    for name in ("tenbit.mkv", "bframes.mp4"):
        frame = read_video(files[name], frames=[10]).frames[0]
        assert frame.dtype == torch.uint8 and (frame.float() - expected).abs().mean() < 6
    assert read_video(files["odd444.mp4"], frames=[0]).frames.shape == (1, 3, 37, 51)


def test_one_frame_clips_and_still_images_with_a_video_suffix_are_one_frame_videos(files):
    for name, size in (("one_frame.mp4", (48, 64)), ("still.mp4", (24, 40))):
        clip = read_video(files[name], frames=lambda count: torch.zeros(3, dtype=torch.long))
        assert clip.num_frames == 1 and clip.frames.shape == (1, 3, *size)
    still = torch.from_numpy(moving_frames(1, 24, 40)[0]).permute(2, 0, 1)
    assert torch.equal(read_video(files["still.mp4"], frames=[0]).frames[0], still)  # png: lossless


def test_a_4k_clip_is_read_at_full_resolution_one_planned_frame_at_a_time(tmp_path):
    path = write_clip(tmp_path / "uhd.mp4", frames=3, height=2160, width=3840, gop=1, options={"preset": "ultrafast"})
    clip = read_video(path, frames=[2])
    assert clip.frames.shape == (1, 3, 2160, 3840)
    assert torch.equal(clip.to_float()[0], read_video(path)[2])


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("writer, message", [
    (lambda folder: write_audio_only(folder / "audio.mp4"), "has no video stream .*holds only audio"),
    (lambda folder: write_zero_frame_mp4(folder / "zero.mp4"), "zero frames"),
    (lambda folder: write_corrupt(folder / "corrupt.mp4"), "could not read video .*corrupt"),
    (lambda folder: _empty(folder / "empty.mp4"), "empty.mp4"),
    (lambda folder: folder / "missing.mp4", "does not exist"),
])
def test_unusable_files_raise_video_read_error_naming_the_file(tmp_path, writer, message):
    path = writer(tmp_path)
    with pytest.raises(VideoReadError, match=message):
        read_video(path, frames=[0])


def test_planned_indices_outside_the_video_and_a_plan_for_another_length_are_refused(files):
    with pytest.raises(VideoReadError, match=r"lie in \[0, 45\)"):
        read_video(files["bframes.mp4"], frames=[0, 45])
    with pytest.raises(RewardInputError, match="plan for 10 frames, but the video has 45"):
        read_video(files["bframes.mp4"], frames=lambda count: FramePlan.of(10, [0]))
    with pytest.raises(RewardInputError, match="max_frames must be at least 1"):
        read_video(files["bframes.mp4"], frames=[0], max_frames=0)


def test_max_frames_reads_the_video_as_if_it_ended_there(files):
    clip = read_video(files["bframes.mp4"], frames=lambda count: [count - 1], max_frames=20)
    assert clip.num_frames == 20 and torch.equal(clip.to_float()[0], read_video(files["bframes.mp4"])[19])


def test_the_frames_of_a_reward_that_looks_at_every_frame_are_capped(files, monkeypatch):
    import reward.frame_plan

    every = lambda count: FramePlan.every_frame_of(count)  # noqa: E731
    assert len(read_video(files["bframes.mp4"], frames=every).plan) == 45
    monkeypatch.setattr(reward.frame_plan, "EVERY_FRAME_LIMIT_BYTES", 45 * 48 * 64 * 3 - 1)
    with pytest.raises(VideoReadError, match="45 frames of 64x48.*looks at every frame.*EVERY_FRAME_LIMIT_BYTES"):
        read_video(files["bframes.mp4"], frames=every)
    assert len(read_video(files["bframes.mp4"], frames=range(45)).plan) == 45  # a plan that happens to cover them all
