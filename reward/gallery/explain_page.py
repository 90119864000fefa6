"""The page of an ``explain`` output: caption (reward, prompt, scores), the mp4 playing, the PNG."""
from __future__ import annotations

from pathlib import Path

from ..checkpoints import atomic_write_text
from .markup import document, esc, key_value_table, link, number
from .media import prepare


def write_explain_page(
    path: str | Path, *, png: Path, mp4: Path, scores: dict[str, float], prompt: str | None = None,
    reward_name: str | None = None,
) -> Path:
    """Write ``path`` (.html) showing ``mp4`` (looping, muted) and ``png`` under their caption; atomic."""
    path = Path(path)
    page_dir = path.parent
    video = prepare(Path(mp4), page_dir, poster_dir=None)
    size = f" width=\"{video.size[0]}\" height=\"{video.size[1]}\"" if video.size else ""
    src, picture = link(mp4, page_dir), link(png, page_dir)
    title = f"Explanation by {reward_name}" if reward_name else "Explanation"
    caption = key_value_table([("prompt", prompt or "(none)")] + [(k, number(v)) for k, v in scores.items()], "settings")
    body = "\n".join([
        f"<header><h1>{esc(title)}</h1></header>",
        caption,
        f"<figure class=\"media\"><video src=\"{src}\"{size} muted loop autoplay playsinline controls preload=\"auto\" "
        f"aria-label=\"{esc(title)}: frame by frame\">Your browser cannot show videos: "
        f"<a href=\"{src}\">open {esc(Path(mp4).name)}</a>.</video><figcaption>Every shown frame with its maps and "
        f"the curves (<a href=\"{src}\">{esc(Path(mp4).name)}</a>).</figcaption></figure>",
        f"<figure><img src=\"{picture}\" alt=\"{esc(title)}: key frames, maps and curves\"><figcaption>Key frames, "
        f"maps and curves (<a href=\"{picture}\">{esc(Path(png).name)}</a>).</figcaption></figure>",
    ])
    atomic_write_text(path, document(title, body, body_class="explain"))
    return path
