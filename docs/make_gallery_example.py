"""Regenerate docs/gallery_example.png: the results page of a tiny best-of-N run, in headless Chromium.

    python docs/make_gallery_example.py

Needs the system's chromium and chromedriver (Debian: apt-get install chromium chromium-driver) and
selenium (the [test] extra). The tiny pipeline and reward are random: the videos are noise, the
picture shows the page's layout.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

from integrations.diffusers import build_tiny_pipeline, tiny_generation_kwargs  # noqa: E402
from integrations.diffusers.best_of_n import best_of_n  # noqa: E402
from reward.mixture import load_mixture  # noqa: E402
from tests.browser import missing_browser, start_chromium  # noqa: E402

PROMPTS = ["a red fox in snow", "a blue car at night"]


def main_example() -> None:
    reason = missing_browser()
    if reason is not None:
        raise SystemExit(f"make_gallery_example.py: {reason}")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rerank_out"
        generation = dict(tiny_generation_kwargs("wan"), height=48, width=64, num_inference_steps=2)
        best_of_n(build_tiny_pipeline("wan"), PROMPTS, load_mixture("colorfulness:1,brightness:100"), n=3, seed=1,
                  out_dir=out, progress=False, **generation)
        browser = start_chromium(Path(folder) / "profile", width=1100, height=1400)
        try:
            browser.get((out / "index.html").as_uri())
            browser.execute_script("document.querySelectorAll('video').forEach(v => { v.pause(); v.currentTime = 0; })")
            browser.save_screenshot(str(DOCS / "gallery_example.png"))
        finally:
            browser.quit()


if __name__ == "__main__":
    torch.manual_seed(0)
    main_example()
