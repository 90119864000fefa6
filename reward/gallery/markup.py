"""HTML building blocks shared by the gallery pages: escaping, relative links, numbers, the page shell.

Every text and attribute value goes through ``esc`` (``html.escape`` with quotes), every link
through ``link`` (a relative, percent-encoded path), so prompts and file names render as text.
"""
from __future__ import annotations

import html
import json
import math
import os
from functools import cache
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote


def esc(value: object) -> str:
    """``value`` as HTML text or a quoted attribute value: ``& < > " '`` escaped."""
    return html.escape(str(value), quote=True)


def link(target: Path, page_dir: Path) -> str:
    """An escaped href from a page in ``page_dir`` to ``target``: relative (the run folder can move),
    percent-encoded (``#``, ``?``, spaces and quotes in names stay part of the path)."""
    try:
        relative = Path(os.path.relpath(Path(target).absolute(), Path(page_dir).absolute())).as_posix()
    except ValueError:  # another drive on Windows: no relative path exists
        return esc(Path(target).absolute().as_uri())
    return esc(quote(relative, safe="/"))


def number(value: float | None) -> str:
    """A score for people: 4 significant digits; '' for a missing value."""
    if value is None:
        return ""
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def as_text(value: object) -> str:
    """A setting or record field for people: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=repr)


def sort_key(value: float | None) -> str:
    """A number as the table's sort script reads it (full precision); '' for missing or NaN."""
    if value is None or math.isnan(value):
        return ""
    return str(value) if isinstance(value, int) else repr(float(value))


@cache
def _asset(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def document(title: str, body: str, *, body_class: str = "") -> str:
    """A complete page with the gallery's style and script inlined (it opens from disk, no server)."""
    script = _asset("gallery.js").replace("</", "<\\/")  # a literal "</script" would end the element early
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"generator\" content=\"aigc-video-reward\">\n"
        f"<title>{esc(title)}</title>\n<style>\n{_asset('gallery.css')}</style>\n<script>\n{script}</script>\n</head>\n"
        f"<body class=\"{esc(body_class)}\">\n{body}\n</body>\n</html>\n"
    )


def key_value_table(pairs: list[tuple[str, str]], css_class: str) -> str:
    """A two-column table of already formatted (unescaped) names and values."""
    rows = "".join(f"<tr><td>{esc(name)}</td><td>{esc(value)}</td></tr>" for name, value in pairs)
    return f"<table class=\"{esc(css_class)}\"><tbody>{rows}</tbody></table>"
