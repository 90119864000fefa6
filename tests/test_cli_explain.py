"""``aigc-reward score`` and ``explain`` with tiny random models on an mp4 written by the test."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from scoring_videos import write_mp4

from reward.cli import main
from reward.explain.render import CAPTION_HEIGHT, CURVE_ROW_HEIGHT, PANEL_WIDTH
from reward.video.io import read_video


def test_cli_scores_and_explains_an_mp4_with_dover_tiny(tmp_path, capsys):
    video = write_mp4(tmp_path / "clip.mp4", frames=6, height=64, width=96)
    options = ["--reward", "dover-tiny", "--random-weights"]
    assert main(["score", str(video), *options, "--num-workers", "0", "--no-progress", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)["results"][0]
    assert set(record) == {"id", "path", "score", "technical", "aesthetic"}
    assert all(0 < record[k] < 1 for k in ("score", "technical", "aesthetic"))

    assert main(["explain", str(video), "--prompt", "a test clip", *options, "--out", str(tmp_path / "x"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["scores"]) == {"score", "technical", "aesthetic"}
    panel = 2 * round(PANEL_WIDTH * 64 / 96 / 2)
    chart = 2 * CURVE_ROW_HEIGHT + 18
    assert Image.open(result["png"]).size == (4 * PANEL_WIDTH, CAPTION_HEIGHT + 2 * panel + chart)
    assert tuple(read_video(result["mp4"]).shape) == (6, 3, CAPTION_HEIGHT + panel + chart, 2 * PANEL_WIDTH)
    page = Path(result["html"]).read_text()
    assert 'src="explain.mp4"' in page and 'src="explain.png"' in page and "a test clip" in page


def test_cli_explains_pcqa_frame_by_frame(tmp_path, capsys):
    video = write_mp4(tmp_path / "clip.mp4", frames=5, height=32, width=48)
    argv = ["explain", str(video), "--prompt", "a test clip", "--reward", "pcqa-tiny", "--random-weights", "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["scores"]) == {"score", "quality"}
    panel = 2 * round(PANEL_WIDTH * 32 / 48 / 2)
    assert Image.open(result["png"]).size == (4 * PANEL_WIDTH, CAPTION_HEIGHT + panel + CURVE_ROW_HEIGHT + 18)
    assert tuple(read_video(result["mp4"]).shape) == (5, 3, CAPTION_HEIGHT + panel + CURVE_ROW_HEIGHT + 18, PANEL_WIDTH)


def test_cli_explains_aigc_vqa_maps_and_its_alignment_frame_by_frame(tmp_path, capsys):
    video = write_mp4(tmp_path / "clip.mp4", frames=5, height=32, width=48)
    argv = ["explain", str(video), "--prompt", "a test clip", "--reward", "aigc-vqa-tiny", "--random-weights", "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["scores"]) == {"score", "technical", "aesthetic", "alignment"}
    panel = 2 * round(PANEL_WIDTH * 32 / 48 / 2)
    chart = 3 * CURVE_ROW_HEIGHT + 18  # technical map, aesthetic map, alignment (frame alone)
    assert Image.open(result["png"]).size == (4 * PANEL_WIDTH, CAPTION_HEIGHT + 2 * panel + chart)
    assert tuple(read_video(result["mp4"]).shape) == (5, 3, CAPTION_HEIGHT + panel + chart, 2 * PANEL_WIDTH)
