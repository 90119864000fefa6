"""Which videos to score: files, folders and globs expanded into an ordered list of ``VideoItem``."""
from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScoringInputError
from ..video.io import GIF_SUFFIX, IMAGE_SUFFIXES, PYAV_FORMATS

#: File suffixes treated as videos when a folder or glob is expanded (PyAV also decodes avi and m4v).
VIDEO_SUFFIXES = frozenset({*PYAV_FORMATS, GIF_SUFFIX, ".avi", ".m4v"})


@dataclass(frozen=True)
class VideoItem:
    """One video to score: a stable ``id`` (the key ``--resume`` matches on), its ``path`` and prompt."""

    id: str
    path: str
    prompt: str | None = None


def is_frame_folder(folder: Path) -> bool:
    """True when ``folder`` holds image frames and no videos or sub-folders (a video stored as frames)."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return bool(entries) and all(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in entries)


def _videos_in_folder(folder: Path) -> list[Path]:
    if is_frame_folder(folder):
        return [folder]
    found: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found.extend(_videos_in_folder(entry))
        elif entry.suffix.lower() in VIDEO_SUFFIXES:
            found.append(entry)
    return found


def _expand(argument: str) -> list[Path]:
    path = Path(argument).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = _videos_in_folder(path)
        if not found:
            raise ScoringInputError(
                f"folder {argument} holds no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) and no frame folders."
            )
        return found
    if glob.has_magic(argument):
        matches = sorted(glob.glob(str(path), recursive=True))
        found = [p for m in matches for p in (_expand(m) if Path(m).is_dir() else [Path(m)])]
        if not found:
            raise ScoringInputError(f"the pattern {argument!r} matches no files.")
        return found
    raise ScoringInputError(f"no such file or folder: {argument}")


def discover_videos(arguments: Iterable[str]) -> list[VideoItem]:
    """Expand files, folders (recursively, sorted) and globs into items, keeping the given order.

    A folder of image frames counts as one video. The id is the path as found; a video named
    twice is scored once.
    """
    items: list[VideoItem] = []
    seen: set[str] = set()
    for argument in arguments:
        for path in _expand(str(argument)):
            key = str(path)
            if key not in seen:
                seen.add(key)
                items.append(VideoItem(id=key, path=key))
    if not items:
        raise ScoringInputError("no videos given: pass files, folders, globs or --manifest.")
    return items


def read_prompts_file(path: str | Path) -> list[str]:
    """One prompt per line; a blank line is an error naming its number (prompts must line up with videos)."""
    path = Path(path)
    if not path.is_file():
        raise ScoringInputError(f"prompts file {path} does not exist.")
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise ScoringInputError(f"{path} line {number} is empty; give one prompt per line, one line per video.")
    return [line.strip() for line in lines]


def attach_prompts(
    items: Sequence[VideoItem], *, prompt: str | None = None, prompts: Sequence[str] | None = None
) -> list[VideoItem]:
    """Give every item the single ``prompt``, or ``prompts[i]`` in order (counts must match)."""
    if prompt is not None and prompts is not None:
        raise ScoringInputError("give either --prompt or --prompts-file, not both.")
    if prompt is not None:
        if not prompt.strip():
            raise ScoringInputError("--prompt is empty; give the text the videos were generated from.")
        return [VideoItem(item.id, item.path, prompt) for item in items]
    if prompts is not None:
        if len(prompts) != len(items):
            raise ScoringInputError(
                f"got {len(prompts)} prompts for {len(items)} videos; the prompts file needs one line per video, "
                "in the order the videos are listed (or use a manifest with path and prompt columns)."
            )
        return [VideoItem(item.id, item.path, text) for item, text in zip(items, prompts)]
    return list(items)


def require_prompts(items: Sequence[VideoItem], reward_name: str) -> None:
    """Fail before any decoding when a prompt-conditioned reward would meet a video without a prompt."""
    missing = [item.id for item in items if not item.prompt]
    if missing:
        raise ScoringInputError(
            f"the {reward_name!r} reward needs a prompt per video, and {len(missing)} videos have none "
            f"(first: {missing[0]}); pass --prompt, --prompts-file, or a manifest with a prompt column."
        )
