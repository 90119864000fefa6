"""reward.gallery without a browser: the ranked HTML a page holds, escaping, pagination, posters, errors.

What a browser makes of the pages (players, sorting, filter) is in test_gallery_browser.py.
"""
from __future__ import annotations

import html
import os
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
import torch
from PIL import Image

from reward.cli import main
from reward.gallery import write_gallery
from reward.gallery.media import POSTER_MAX_SIDE
from reward.video.io import write_video

HOSTILE_PROMPT = "<script>window.pwned = 1</script> a \"quoted\" & 'single' <b>bold</b> prompt"
HOSTILE_NAME = "clip \"one\" <b> #1 & 'two'.mp4"


class PageParser(HTMLParser):
    """Collects what the tests check: groups, cards, players, table rows, script tags, text per tag."""

    def __init__(self):
        super().__init__()
        self.groups, self.cards, self.videos, self.rows, self.scripts = [], [], [], [], 0
        self.headings: list[str] = []
        self._heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "prompt-group" in attrs.get("class", ""):
            self.groups.append(attrs["data-prompt"])
        elif tag == "li" and "candidate" in attrs.get("class", ""):
            self.cards.append((self.groups[-1], attrs["id"], attrs.get("data-rank")))
        elif tag == "video":
            self.videos.append(attrs)
        elif tag == "tr" and "data-position" in attrs:
            self.rows.append((attrs["data-prompt"], int(attrs["data-position"])))
        elif tag == "script":
            self.scripts += 1
        elif tag == "h2":
            self._heading = []

    def handle_endtag(self, tag):
        if tag == "h2" and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def clip(path: Path, frames: int = 3, height: int = 24, width: int = 40, level: float = 0.5) -> Path:
    video = torch.full((frames, 3, height, width), level)
    video[:, 0] = torch.linspace(0, 1, width)  # a gradient, so posters are not flat
    return write_video(path, video, fps=8)


def test_candidates_are_ranked_per_prompt_with_relative_links_and_posters(tmp_path):
    run = tmp_path / "run"
    scores = {("a fox", 0): 0.2, ("a fox", 1): 0.9, ("a car", 2): 0.5, ("a fox", 3): 0.4, ("a car", 4): 0.7}
    records = [
        {"prompt": prompt, "file": f"videos/v{i}.mp4", "score": score, "components": {"sharpness": -score}}
        for (prompt, i), score in scores.items()
    ]
    for i in range(5):
        clip(run / "videos" / f"v{i}.mp4")
    pages = write_gallery(records, run / "index.html", settings={"n": 3, "reward": {"name": "test"}})
    assert pages == [run / "index.html"]
    page = parse(pages[0])
    assert page.groups == ["a fox", "a car"]  # order of first appearance
    assert page.cards == [("a fox", "c1", "1"), ("a fox", "c3", "2"), ("a fox", "c0", "3"),
                          ("a car", "c4", "1"), ("a car", "c2", "2")]
    assert page.rows == [("a fox", 1), ("a fox", 3), ("a fox", 0), ("a car", 4), ("a car", 2)]
    for video in page.videos:
        assert not video["src"].startswith(("/", "file:")) and (run / unquote(video["src"])).is_file()
        assert {"muted", "loop", "playsinline", "controls"} <= set(video)
        assert (video["data-width"], video["data-height"]) == ("40", "24")
        with Image.open(run / unquote(video["poster"])) as poster:
            assert poster.format == "JPEG" and poster.size == (40, 24)
    text = pages[0].read_text()
    assert "reward.name" in text and "sharpness" in text and "<script>" in text  # the page's own script


def test_prompts_and_file_names_render_as_text(tmp_path):
    video = clip(tmp_path / "videos" / HOSTILE_NAME)
    page_path = write_gallery([{"prompt": HOSTILE_PROMPT, "file": str(video), "score": 1.0, "seed": 3}],
                              tmp_path / "index.html", settings={"note": HOSTILE_PROMPT})[0]
    text = page_path.read_text()
    assert "<script>window.pwned" not in text and "<b>" not in text
    assert html.escape(HOSTILE_PROMPT, quote=True) in text
    page = parse(page_path)
    assert page.scripts == 1  # only the page's own
    assert page.headings[0] == HOSTILE_PROMPT + " (1 candidate)"
    assert page.groups == [HOSTILE_PROMPT]
    assert (tmp_path / unquote(page.videos[0]["src"])) == video  # '#', quotes and spaces kept in the path


def test_missing_ranks_follow_the_score_direction_and_failures_come_last(tmp_path):
    records = [{"prompt": "p", "score": 3.0}, {"prompt": "p", "error": "unreadable"}, {"prompt": "p", "score": 1.0}]
    page = parse(write_gallery(records, tmp_path / "low.html", higher_is_better=False)[0])
    assert page.cards == [("p", "c2", "1"), ("p", "c0", "2"), ("p", "c1", None)]
    given = [{"prompt": "p", "score": 1.0, "rank": 2}, {"prompt": "p", "score": 0.0, "rank": 1}]
    assert parse(write_gallery(given, tmp_path / "given.html")[0]).cards == [("p", "c1", "1"), ("p", "c0", "2")]


def test_large_runs_continue_on_numbered_pages_and_the_first_lists_every_candidate(tmp_path):
    sizes = {"a": 3, "b": 2, "c": 5}
    records = [{"prompt": p, "score": float(i)} for p, count in sizes.items() for i in range(count)]
    paths = write_gallery(records, tmp_path / "index.html", page_size=4, posters=False)
    assert [p.name for p in paths] == ["index.html", "index_p002.html", "index_p003.html", "index_p004.html"]
    pages = [parse(p) for p in paths]
    assert [page.groups for page in pages] == [["a"], ["b"], ["c"], ["c"]]  # a group larger than a page is split
    assert [len(page.cards) for page in pages] == [3, 2, 4, 1]
    assert len(pages[0].rows) == len(records) and all(not page.rows for page in pages[1:])
    first = paths[0].read_text()
    assert 'href="index_p004.html#c5"' in first  # c's worst candidate is on the last page
    assert 'href="index_p003.html" rel="next"' in paths[1].read_text()
    write_gallery(records, tmp_path / "index.html", page_size=100, posters=False)
    assert sorted(p.name for p in tmp_path.glob("index*.html")) == ["index.html"]  # stale pages removed


def test_candidates_without_a_playable_file_get_a_note(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    records = [
        {"prompt": "p", "file": "", "score": 0.1, "pruned_at_step": 2, "preview_score": 0.1},
        {"prompt": "p", "file": "gone.mp4", "score": 0.5},
        {"prompt": "p", "file": "broken.mp4", "score": 0.7},
    ]
    path = write_gallery(records, tmp_path / "index.html")[0]
    text = path.read_text()
    assert "Stopped early after denoising step 2: no video." in text
    assert "Video file not found:" in text and "gone.mp4" in text
    broken = parse(path).videos
    assert len(broken) == 1 and "poster" not in broken[0]  # the browser's own failure is reported on the page
    assert ">pruned_at_step</th>" in text and ">preview_score</th>" in text  # extras become columns


def test_posters_are_shrunk_and_reused_until_the_video_changes(tmp_path):
    video = clip(tmp_path / "big.mp4", frames=2, height=POSTER_MAX_SIDE, width=2 * POSTER_MAX_SIDE)
    write_gallery([{"score": 1.0, "file": "big.mp4"}], tmp_path / "index.html")
    (poster,) = (tmp_path / "index_posters").iterdir()
    with Image.open(poster) as image:
        assert image.size == (POSTER_MAX_SIDE, POSTER_MAX_SIDE // 2)
    assert f'data-width="{2 * POSTER_MAX_SIDE}"' in (tmp_path / "index.html").read_text()  # the video's own size
    written = poster.stat().st_mtime_ns
    write_gallery([{"score": 1.0, "file": "big.mp4"}], tmp_path / "index.html")
    assert poster.stat().st_mtime_ns == written
    later = poster.stat().st_mtime + 10
    os.utime(video, (later, later))
    write_gallery([{"score": 1.0, "file": "big.mp4"}], tmp_path / "index.html")
    assert poster.stat().st_mtime_ns != written


@pytest.mark.parametrize(
    ("records", "path", "kwargs", "message"),
    [
        ([{"prompt": "p"}], "a.html", {}, "gallery record 0 has neither 'score' nor 'error'"),
        ([{"score": "high"}], "a.html", {}, "'score' must be a number, got 'high'"),
        ([{"score": 1, "components": [1, 2]}], "a.html", {}, "'components' must map names to numbers"),
        (["row"], "a.html", {}, "must be a mapping"),
        ([], "a.html", {}, "at least one record"),
        ([{"score": 1}], "a.txt", {}, "must be an .html file"),
        ([{"score": 1}], "a.html", {"page_size": 0}, "page_size must be at least 1"),
    ],
)
def test_bad_input_says_what_is_wrong(tmp_path, records, path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_gallery(records, tmp_path / path, **kwargs)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_score_command_writes_a_page_of_the_scored_videos(tmp_path, capsys):
    videos = [clip(tmp_path / "in" / f"{name}.mp4", level=level) for name, level in (("dim", 0.1), ("bright", 0.9))]
    page = tmp_path / "out" / "report.html"
    argv = ["score", *map(str, videos), "--prompt", "a test", "--reward", "brightness", "--num-workers", "0",
            "--no-progress", "--html", str(page)]
    assert main(argv) == 0
    assert f"results page: {page}" in capsys.readouterr().err
    parsed = parse(page)
    assert [card[1:] for card in parsed.cards] == [("c1", "1"), ("c0", "2")]  # bright.mp4 ranks first
    assert [unquote(v["src"]) for v in parsed.videos] == ["../in/bright.mp4", "../in/dim.mp4"]
