"""Headless Chromium for the page tests and docs screenshots: the system's chromium and chromedriver,
driven by selenium (nothing downloaded: the binaries are given, so Selenium Manager never runs)."""
from __future__ import annotations

import shutil
from pathlib import Path

#: Set to 1 (CI does) to turn a missing browser into a failure instead of a skip.
REQUIRE_BROWSER_ENV = "AIGC_REWARD_REQUIRE_BROWSER"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: Headless, and quiet: no sign-in, updates or background connections (the machine has no network).
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--hide-scrollbars",
)


def missing_browser() -> str | None:
    """Why no browser test can run here (None when one can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not any(shutil.which(name) for name in BROWSERS) or not shutil.which("chromedriver"):
        return ("no headless browser: install chromium and chromedriver "
                "(Debian: apt-get install chromium chromium-driver)")
    return None


def start_chromium(profile: Path, *, width: int = 1280, height: int = 900):
    """A headless Chromium with a fresh profile in ``profile``; quit it when done."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(name) for name in BROWSERS if shutil.which(name))
    for flag in (*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
