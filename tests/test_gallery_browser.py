"""The results pages in a real headless Chromium (one browser for the module), on pages written by
tiny runs: best-of-N, ``aigc-reward score --html`` and ``explain``.

Skipped where no browser is installed; ``AIGC_REWARD_REQUIRE_BROWSER=1`` (set by .ci/run) makes that
a failure. A screenshot of the best-of-N page is kept in the test's temporary folder (or in
``$AIGC_REWARD_ARTEFACTS`` when set).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from integrations.diffusers import build_tiny_pipeline, tiny_generation_kwargs
from integrations.diffusers.best_of_n import best_of_n
from reward.cli import main
from reward.explain import explain_video
from reward.mixture import load_mixture
from reward.video.io import read_video
from tests.browser import REQUIRE_BROWSER_ENV, missing_browser, start_chromium
from tests.diffusers_support import one_thread  # noqa: F401  (autouse fixture)
from tests.test_gallery import HOSTILE_NAME, HOSTILE_PROMPT, clip

PROMPTS = ["a red fox in snow", "a blue car at night"]
#: Two components that rank the candidates differently from the score.
REWARD = "colorfulness:1,brightness:100"
SIZE = dict(height=48, width=64)
FPS = 8
#: Seconds a page may take to load its videos' metadata.
LOAD_TIMEOUT = 20


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = missing_browser()
    if reason is not None:
        if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def best_of_n_run(tmp_path_factory):
    """A tiny best-of-3 run of two prompts: its folder and results.json."""
    out = tmp_path_factory.mktemp("best_of_n")
    generation = dict(tiny_generation_kwargs("wan"), **SIZE, num_inference_steps=2)
    best_of_n(build_tiny_pipeline("wan"), PROMPTS, load_mixture(REWARD), n=3, seed=1, out_dir=out, fps=FPS,
              progress=False, **generation)
    return out, json.loads((out / "results.json").read_text())


def open_page(browser, path: Path) -> None:
    """Load a page and wait until every video has its metadata or has failed."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(path.as_uri())
    WebDriverWait(browser, LOAD_TIMEOUT).until(lambda driver: driver.execute_script(
        "return [...document.querySelectorAll('video')].every(v => v.readyState >= 1 || v.error || !v.src)"
    ))


def table_rows(browser) -> list[dict]:
    return browser.execute_script("""
        const titles = [...document.querySelectorAll('#candidates-table thead th')].map(th => th.textContent);
        return [...document.querySelectorAll('#candidates-table tbody tr')].map(tr => Object.fromEntries(
            [...tr.cells].map((td, i) => [titles[i], td.dataset.sort !== undefined ? td.dataset.sort : td.textContent])));
    """)


def click_column(browser, title: str) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.XPATH, f"//table[@id='candidates-table']//th/button[text()='{title}']").click()


def test_table_lists_candidates_in_rank_order_and_sorts_by_a_component(browser, best_of_n_run):
    out, results = best_of_n_run
    open_page(browser, out / "index.html")
    rows = table_rows(browser)
    expected = [(c["prompt"], str(c["rank"]), c["seed"]) for c in results["candidates"]]
    assert [(r["prompt"], r["rank"], int(r["seed"])) for r in rows] == expected  # one row per candidate, ranked

    brightness = sorted((c["components"]["brightness"] for c in results["candidates"]), reverse=True)
    click_column(browser, "brightness")  # scores sort highest first
    by_brightness = table_rows(browser)
    assert [float(r["brightness"]) for r in by_brightness] == pytest.approx(brightness, rel=1e-12)
    assert [r["seed"] for r in by_brightness] != [r["seed"] for r in rows]  # the order changed
    click_column(browser, "brightness")
    assert [float(r["brightness"]) for r in table_rows(browser)] == pytest.approx(brightness[::-1], rel=1e-12)
    click_column(browser, "rank")
    assert [int(r["rank"]) for r in table_rows(browser)] == [1, 1, 2, 2, 3, 3]

    artefacts = Path(os.environ.get("AIGC_REWARD_ARTEFACTS") or out)
    artefacts.mkdir(parents=True, exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    shot = artefacts / "best_of_n_page.png"
    assert browser.save_screenshot(str(shot))
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size[0] >= 1000 and len(image.convert("L").getcolors(1 << 16)) > 10  # a page, not a blank


def test_every_video_loads_its_metadata_at_the_size_generated(browser, best_of_n_run):
    out, results = best_of_n_run
    open_page(browser, out / "index.html")
    videos = browser.execute_script("""
        return [...document.querySelectorAll('video')].map(v => ({src: v.getAttribute('src'), error: !!v.error,
            duration: v.duration, width: v.videoWidth, height: v.videoHeight, poster: v.poster}));
    """)
    assert [v["src"] for v in videos] == [c["file"] for c in results["candidates"]]
    frames = read_video(out / results["candidates"][0]["file"]).shape[0]
    for video in videos:
        assert not video["error"] and video["duration"] == pytest.approx(frames / FPS, abs=0.05)
        assert (video["width"], video["height"]) == (SIZE["width"], SIZE["height"])
        assert video["poster"].endswith(".jpg")
    assert not browser.find_elements("css selector", ".unplayable")


def test_videos_in_view_play_unless_reduced_motion_is_asked(browser, best_of_n_run):
    from selenium.webdriver.support.ui import WebDriverWait

    out, _ = best_of_n_run
    first_playing = "const v = document.querySelector('video'); return !v.paused && v.currentTime > 0"
    open_page(browser, out / "index.html")
    WebDriverWait(browser, LOAD_TIMEOUT).until(lambda driver: driver.execute_script(first_playing))
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]})
    try:
        open_page(browser, out / "index.html")
        assert browser.execute_script("return [...document.querySelectorAll('video')].every(v => v.paused)")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def test_the_filter_hides_other_prompts(browser, best_of_n_run):
    from selenium.webdriver.common.by import By

    out, _ = best_of_n_run
    open_page(browser, out / "index.html")
    groups = browser.find_elements(By.CSS_SELECTOR, "section.prompt-group")
    field = browser.find_element(By.ID, "prompt-filter")
    field.send_keys("FOX")
    assert [g.is_displayed() for g in groups] == [True, False]
    rows = browser.find_elements(By.CSS_SELECTOR, "#candidates-table tbody tr")
    assert [r.is_displayed() for r in rows] == [True] * 3 + [False] * 3
    assert browser.find_element(By.ID, "filter-count").text == "1 of 2 prompt groups on this page shown"
    field.clear()
    field.send_keys(" ")
    assert all(g.is_displayed() for g in groups) and all(r.is_displayed() for r in rows)


def test_the_ranked_view_works_without_javascript(browser, best_of_n_run):
    from selenium.webdriver.common.by import By

    out, results = best_of_n_run
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.get((out / "index.html").as_uri())
        cards = browser.find_elements(By.CSS_SELECTOR, "li.candidate")
        assert [c.get_attribute("id") for c in cards] == [f"c{i}" for i in range(len(results["candidates"]))]
        assert all(c.find_element(By.TAG_NAME, "video").is_displayed() for c in cards)
        assert cards[0].find_element(By.CLASS_NAME, "card-title").text.startswith("#1")
        assert browser.find_element(By.CSS_SELECTOR, "noscript .note").is_displayed()
        assert not browser.find_element(By.ID, "prompt-filter").is_displayed()
    finally:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})


def test_score_page_shows_prompts_and_file_names_as_text_and_says_when_a_video_cannot_play(
    browser, tmp_path_factory, capsys
):
    from selenium.webdriver.common.by import By

    folder = tmp_path_factory.mktemp("scored")
    odd = clip(folder / HOSTILE_NAME, frames=4, height=32, width=48)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    page = folder / "report.html"
    argv = ["score", str(odd), str(folder / "broken.mp4"), "--prompt", HOSTILE_PROMPT, "--reward", "brightness",
            "--num-workers", "0", "--no-progress", "--html", str(page)]
    assert main(argv) == 0
    capsys.readouterr()
    open_page(browser, page)
    assert browser.execute_script("return window.pwned") is None
    assert browser.find_element(By.CSS_SELECTOR, "section.prompt-group h2").text.startswith(HOSTILE_PROMPT)
    assert browser.find_element(By.CSS_SELECTOR, "#c0 .file a").text == HOSTILE_NAME
    played = browser.execute_script("const v = document.querySelector('#c0 video'); return [v.videoWidth, v.duration]")
    assert played[0] == 48 and played[1] > 0
    note = browser.find_element(By.CSS_SELECTOR, "#c1 .unplayable")
    assert note.is_displayed() and note.text.startswith("This browser cannot play this video")
    assert not browser.find_element(By.CSS_SELECTOR, "#c1 video").is_displayed()
    assert browser.find_element(By.CSS_SELECTOR, "#c1 .error").text.startswith("error: VideoReadError: could not read video")


def test_explain_page_plays_its_video_under_the_caption(browser, tmp_path_factory):
    from selenium.webdriver.common.by import By

    folder = tmp_path_factory.mktemp("explain")
    video = torch.rand(4, 3, 32, 48)
    result = explain_video(load_mixture(REWARD), video, "a sun at dusk", folder, fps=FPS)
    open_page(browser, result.html)
    assert "a sun at dusk" in browser.find_element(By.CSS_SELECTOR, "table.settings").text
    size = read_video(result.mp4).shape
    played = browser.execute_script("const v = document.querySelector('video'); return [v.videoWidth, v.videoHeight, v.duration]")
    assert played[:2] == [size[3], size[2]] and played[2] > 0
    assert browser.execute_script("return document.querySelector('img').naturalWidth") > 0
