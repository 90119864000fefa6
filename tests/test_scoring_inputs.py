"""Input discovery for scoring: files, folders, globs, prompts files and manifests (errors name the line)."""
from __future__ import annotations

import json

import pytest

from reward.errors import ScoringInputError
from reward.scoring import attach_prompts, discover_videos, read_manifest, read_prompts_file
from reward.scoring.inputs import require_prompts


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folders_are_searched_recursively_in_sorted_order_and_frame_folders_count_as_one_video(tmp_path):
    _touch(tmp_path / "b.mp4")
    _touch(tmp_path / "a.gif")
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / "sub" / "c.webm")
    for i in range(3):
        _touch(tmp_path / "frames" / f"{i:03d}.png")
    items = discover_videos([str(tmp_path)])
    assert [item.id for item in items] == [str(tmp_path / n) for n in ("a.gif", "b.mp4", "frames", "sub/c.webm")]


def test_globs_files_and_repeats_keep_the_given_order(tmp_path):
    for name in ("x1.mp4", "x2.mp4", "y.mp4"):
        _touch(tmp_path / name)
    items = discover_videos([str(tmp_path / "y.mp4"), str(tmp_path / "x*.mp4"), str(tmp_path / "y.mp4")])
    assert [item.path for item in items] == [str(tmp_path / n) for n in ("y.mp4", "x1.mp4", "x2.mp4")]


@pytest.mark.parametrize(
    "argument, message",
    [("missing.mp4", "no such file or folder"), ("nothing*.mp4", "matches no files"), ("empty", "holds no videos")],
)
def test_bad_arguments_name_the_problem(tmp_path, argument, message):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScoringInputError, match=message):
        discover_videos([str(tmp_path / argument)])


def test_prompts_file_lines_up_with_videos(tmp_path):
    videos = [_touch(tmp_path / f"{i}.mp4") for i in range(2)]
    items = discover_videos([str(v) for v in videos])
    (tmp_path / "prompts.txt").write_text("a cat\na dog\n\n")
    assert [i.prompt for i in attach_prompts(items, prompts=read_prompts_file(tmp_path / "prompts.txt"))] == ["a cat", "a dog"]
    (tmp_path / "short.txt").write_text("a cat\n")
    with pytest.raises(ScoringInputError, match="got 1 prompts for 2 videos"):
        attach_prompts(items, prompts=read_prompts_file(tmp_path / "short.txt"))
    (tmp_path / "gap.txt").write_text("a cat\n\na dog\n")
    with pytest.raises(ScoringInputError, match="line 2 is empty"):
        read_prompts_file(tmp_path / "gap.txt")
    with pytest.raises(ScoringInputError, match="needs a prompt per video"):
        require_prompts(items, "aigc-vqa")


def test_csv_manifest_resolves_paths_next_to_it_and_defaults_the_id(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text('path,prompt,id\nclips/a.mp4,"a fox, running",fox\n/abs/b.mp4,a cat,\n')
    items = read_manifest(manifest)
    assert [(i.id, i.path, i.prompt) for i in items] == [
        ("fox", str(tmp_path / "clips" / "a.mp4"), "a fox, running"),
        ("/abs/b.mp4", "/abs/b.mp4", "a cat"),
    ]


def test_jsonl_manifest_skips_blank_lines(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"path": "a.mp4", "prompt": "p"}) + "\n\n" + json.dumps({"path": "b.mp4", "id": 7}) + "\n")
    items = read_manifest(manifest)
    assert [(i.id, i.prompt) for i in items] == [("a.mp4", "p"), ("7", None)]


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("m.jsonl", '{"path": "a.mp4"}\n{"path": "b.mp4"\n', "line 2: not valid JSON"),
        ("m.jsonl", '{"path": "a.mp4"}\n\n["b.mp4"]\n', "line 3: expected a JSON object"),
        ("m.jsonl", '{"path": "a.mp4"}\n{"prompt": "no path"}\n', "line 2: no 'path' given"),
        ("m.jsonl", '{"path": "a.mp4", "prompt": ["x"]}\n', "line 1: 'prompt' must be a string"),
        ("m.jsonl", '{"path": "a.mp4", "id": "v"}\n{"path": "b.mp4", "id": "v"}\n', "line 2: id 'v' is already used on line 1"),
        ("m.csv", "video,prompt\na.mp4,p\n", "line 1: the header has no 'path' column"),
        ("m.csv", "path,prompt\na.mp4,p\nb.mp4,p,extra\n", "line 3: more fields"),
        ("m.csv", "path,prompt\na.mp4,p\n,p\n", "line 3: no 'path' given"),
        ("m.txt", "a.mp4\n", "must be .csv or .jsonl"),
    ],
)
def test_manifest_errors_name_the_line_and_the_problem(tmp_path, name, text, message):
    manifest = tmp_path / name
    manifest.write_text(text)
    with pytest.raises(ScoringInputError, match=message.replace("[", r"\[")):
        read_manifest(manifest)
