"""Video files: round trips through every supported format, atomic writes, and clear read errors."""
from __future__ import annotations

import pytest
import torch

from reward.errors import RewardInputError, VideoReadError
from reward.video.io import read_video, read_video_uint8, write_image, write_video


def smooth_video(frames: int = 5, height: int = 48, width: int = 64) -> torch.Tensor:
    """[T, 3, H, W] in [0, 1]: soft colour gradients that move, so every frame differs (gif keeps them all)."""
    rows = torch.linspace(0, 1, height)[:, None].expand(height, width)
    cols = torch.linspace(0, 1, width)[None, :].expand(height, width)
    return torch.stack([
        torch.stack([0.2 + 0.6 * cols * (1 - 0.1 * t), 0.2 + 0.5 * rows, 0.3 + 0.05 * t + 0.3 * rows * cols])
        for t in range(frames)
    ])


# (max, mean) error in grey levels: 8-bit limited-range YUV 4:2:0 costs ~2 levels, chroma edges a few more
@pytest.mark.parametrize(
    "name, max_error, mean_error",
    [("clip.mp4", 10, 2), ("clip.webm", 10, 2), ("clip.mkv", 10, 2), ("clip.mov", 10, 2), ("frames", 0.5, 0.5)],
)
def test_round_trips_keep_frames_and_pixels(tmp_path, name, max_error, mean_error):
    video = smooth_video()
    path = write_video(tmp_path / name, video, fps=8)
    back = read_video(path)
    assert back.shape == video.shape and back.dtype == torch.float32
    error = (back - video).abs() * 255
    assert error.max() <= max_error + 1e-4 and error.mean() <= mean_error
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp files left behind


def test_gif_round_trip_and_uint8_layouts(tmp_path):
    video = (smooth_video() * 8).round() / 8  # few colours: the 256-colour palette holds them exactly
    write_video(tmp_path / "clip.gif", video)
    assert torch.equal(read_video(tmp_path / "clip.gif"), (video * 255).round() / 255)
    frames = read_video_uint8(tmp_path / "clip.gif", max_frames=2)
    assert frames.shape == (2, 48, 64, 3) and frames.dtype == torch.uint8
    write_video(tmp_path / "again", frames)  # uint8 [T, H, W, 3] is accepted as well
    assert torch.equal(read_video_uint8(tmp_path / "again"), frames)
    held = torch.cat([video[:1], video[:1], video[1:2]])  # Pillow merges identical consecutive gif frames
    assert read_video(write_video(tmp_path / "held.gif", held)).shape[0] == 2


def test_odd_sides_are_padded_for_h264_and_folders_sort_numerically(tmp_path):
    video = smooth_video(frames=2, height=37, width=51)
    back = read_video(write_video(tmp_path / "odd.mp4", video))
    assert back.shape == (2, 3, 38, 52)
    assert (back[:, :, :37, :51] - video).abs().max() <= 8 / 255
    folder = tmp_path / "numbered"
    folder.mkdir()
    for index in (10, 2, 1):
        write_image(folder / f"f_{index}.png", torch.full((3, 4, 4), index / 255))
    assert read_video_uint8(folder)[:, 0, 0, 0].tolist() == [1, 2, 10]


def _top_level_boxes(path) -> list[str]:
    """The names of an mp4's top-level boxes, in file order."""
    data, names, offset = path.read_bytes(), [], 0
    while offset < len(data):
        size, name = int.from_bytes(data[offset : offset + 4], "big"), data[offset + 4 : offset + 8].decode()
        if size == 1:
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        names.append(name)
        offset += size
    return names


def test_mp4_is_browser_ready_h264_yuv420p_with_the_index_first(tmp_path):
    import av

    path = write_video(tmp_path / "web.mp4", smooth_video(frames=3, height=32, width=48))
    boxes = _top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat")  # +faststart: playable before the whole file is read
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")


def test_writing_replaces_atomically_and_refuses_bad_input(tmp_path):
    first, second = smooth_video(frames=3), smooth_video(frames=2)
    write_video(tmp_path / "frames", first)
    write_video(tmp_path / "frames", second)
    assert read_video(tmp_path / "frames").shape[0] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]
    with pytest.raises(RewardInputError, match="unknown video suffix"):
        write_video(tmp_path / "clip.xyz", first)
    with pytest.raises(RewardInputError, match=r"\[T, 3, H, W\]"):
        write_video(tmp_path / "clip.mp4", first[0])
    with pytest.raises(RewardInputError, match="zero frames"):
        write_video(tmp_path / "clip.mp4", first[:0])
    with pytest.raises(RewardInputError, match="png"):
        write_image(tmp_path / "image.bmp", first[0])


def _zero_frame_mp4(path):
    import av

    with av.open(str(path), mode="w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        output.start_encoding()
    return path


def test_unreadable_missing_and_empty_videos_raise_video_read_error(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01 definitely not a video" * 40)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(write_video(tmp_path / "whole.mp4", smooth_video()).read_bytes()[:600])
    bad_gif = tmp_path / "bad.gif"
    bad_gif.write_bytes(b"GIF89a" + bytes(50))
    cases = [
        (corrupt, "could not read video .*corrupt.mp4"),
        (truncated, "truncated.mp4.* truncated"),  # cut inside the index (written first): no frame can be found
        (bad_gif, "could not read video .*bad.gif"),
        (tmp_path / "missing.mp4", "missing.mp4 does not exist"),
        (_zero_frame_mp4(tmp_path / "empty.mp4"), "empty.mp4 has no video stream"),
        (tmp_path, "no png/jpg frames"),
    ]
    for path, message in cases:
        with pytest.raises(VideoReadError, match=message) as error:
            read_video(path)
        assert isinstance(error.value, RewardInputError) and isinstance(error.value, OSError)
