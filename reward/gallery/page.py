"""The results page of a run: per prompt its candidates ranked in a row of looping muted players, a
sortable table of every candidate, a prompt filter and the run's settings (see ``write_gallery``)."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..checkpoints import atomic_write_text
from .entries import Column, Entry, columns, prompt_groups, to_entries
from .markup import as_text, document, esc, key_value_table, link, number, sort_key
from .media import Media, prepare

#: Candidates per page: a browser keeps this many players on one page responsive.
DEFAULT_PAGE_SIZE = 100
#: Settings with more rows than this start folded.
SETTINGS_SHOWN_OPEN = 8
NO_PROMPT = "(no prompt)"


@dataclass
class _Part:
    """A prompt group, or the part of one that fits on a page."""

    entries: list[Entry]
    total: int
    continued: bool = False


def _paginate(groups: list[list[Entry]], page_size: int) -> list[list[_Part]]:
    """Whole prompt groups per page up to ``page_size`` candidates; a group larger than a page is split."""
    pages: list[list[_Part]] = [[]]
    filled = 0
    for group in groups:
        rest, continued = group, False
        while rest:
            if filled and filled + min(len(rest), page_size) > page_size:
                pages.append([])
                filled = 0
            part = rest[:page_size]
            pages[-1].append(_Part(part, len(group), continued))
            filled += len(part)
            rest, continued = rest[page_size:], True
    return pages


def page_paths(path: Path, count: int) -> list[Path]:
    """``report.html``, then ``report_p002.html``, ``report_p003.html``, ..."""
    return [path] + [path.with_name(f"{path.stem}_p{index:03d}{path.suffix}") for index in range(2, count + 1)]


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested settings as ``a.b.c`` -> value rows; lists and other values as JSON text."""
    rows: list[tuple[str, str]] = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows += _flatten(value, name + ".")
        else:
            rows.append((name, as_text(value)))
    return rows


def _settings_block(settings: Mapping[str, Any] | None) -> str:
    if not settings:
        return ""
    rows = _flatten(settings)
    opened = " open" if len(rows) <= SETTINGS_SHOWN_OPEN else ""
    return (f"<details class=\"run-settings\"{opened}><summary>Run settings ({len(rows)})</summary>"
            f"{key_value_table(rows, 'settings')}</details>")


def _media_html(media: Media, page_dir: Path, label: str, pruned_at_step: Any = None) -> str:
    size = f" width=\"{media.size[0]}\" height=\"{media.size[1]}\"" if media.size else ""
    data = f" data-width=\"{media.size[0]}\" data-height=\"{media.size[1]}\"" if media.size else ""
    poster = f" poster=\"{link(media.poster, page_dir)}\"" if media.poster else ""
    if media.kind == "video":
        src = link(media.file, page_dir)
        fallback = f"Your browser cannot show videos: <a href=\"{src}\">open {esc(media.file.name)}</a>."
        return (f"<video src=\"{src}\"{poster}{size}{data} muted loop playsinline controls preload=\"metadata\" "
                f"aria-label=\"{esc(label)}\">{fallback}</video>")
    if media.kind == "picture":
        return f"<img src=\"{link(media.file, page_dir)}\"{size}{data} alt=\"{esc(label)}\" loading=\"lazy\">"
    if media.kind == "frames" and media.poster:
        still = link(media.poster, page_dir)
        return f"<img src=\"{still}\"{size}{data} alt=\"first frame of {esc(label)}\" loading=\"lazy\">"
    if media.kind == "missing":
        return f"<p class=\"missing\">Video file not found: {esc(media.file)}</p>"
    if media.kind == "frames":
        return f"<p class=\"missing\">Frame folder with no readable frame: {esc(media.file.name)}</p>"
    if pruned_at_step is not None:
        return f"<p class=\"missing\">Stopped early after denoising step {esc(pruned_at_step)}: no video.</p>"
    return "<p class=\"missing\">No video was saved for this candidate.</p>"


def _card(entry: Entry, media: Media, page_dir: Path) -> str:
    title = f"#{entry.rank}" if entry.rank is not None else "unranked"
    if entry.seed is not None:
        title += f" · seed {entry.seed}"
    rows = [("score", number(entry.score))] + [(name, number(value)) for name, value in entry.components.items()]
    rows += [(name, as_text(value)) for name, value in entry.extras.items()]
    if entry.id is not None:
        rows.insert(0, ("id", entry.id))
    label = f"{title}: {entry.prompt or entry.id or (entry.file.name if entry.file else '')}"
    player = _media_html(media, page_dir, label, entry.extras.get("pruned_at_step"))
    parts = [f"<div class=\"media\">{player}</div>",
             f"<p class=\"card-title\">{esc(title)}</p>", key_value_table(rows, "card-scores")]
    if entry.error:
        parts.append(f"<p class=\"error\">error: {esc(entry.error)}</p>")
    if entry.file is not None and media.kind != "missing":
        parts.append(f"<p class=\"file\"><a href=\"{link(entry.file, page_dir)}\">{esc(entry.file.name)}</a></p>")
    best = " best" if entry.rank == 1 else ""
    rank = f" data-rank=\"{entry.rank}\"" if entry.rank is not None else ""
    return f"<li class=\"candidate{best}\" id=\"c{entry.position}\"{rank}>{''.join(parts)}</li>"


def _group(part: _Part, media: dict[int, Media], page_dir: Path) -> str:
    prompt = part.entries[0].prompt
    shown = len(part.entries)
    count = f"{part.total} candidate{'s' if part.total != 1 else ''}"
    count += f", {shown} on this page" if shown < part.total else ""
    count += ", continued" if part.continued else ""
    heading = f"{esc(prompt if prompt is not None else NO_PROMPT)} <small>({count})</small>"
    cards = "".join(_card(entry, media[entry.position], page_dir) for entry in part.entries)
    return (f"<section class=\"prompt-group\" data-prompt=\"{esc(prompt or '')}\"><h2>{heading}</h2>"
            f"<ol class=\"candidates\">{cards}</ol></section>")


def _cell(column: Column, entry: Entry, anchor: str) -> str:
    value = column.value(entry)
    if column.numeric:
        shown = esc(number(value) if isinstance(value, float) else ("" if value is None else str(value)))
        text = f"<a href=\"{anchor}\">{shown}</a>" if column.links_to_card else shown
        return f"<td class=\"num\" data-sort=\"{sort_key(value)}\">{text}</td>"
    css = f" class=\"{esc(column.css)}\"" if column.css else ""
    return f"<td{css}>{esc(value)}</td>"


def _table(entries: list[Entry], cols: list[Column], anchors: dict[int, str]) -> str:
    def header(column: Column) -> str:
        css = " class=\"num\"" if column.numeric else ""
        first = "descending" if column.descending_first else "ascending"
        return f"<th scope=\"col\"{css} data-first=\"{first}\">{esc(column.title)}</th>"

    head = "".join(header(column) for column in cols)
    body = "".join(
        f"<tr data-position=\"{entry.position}\" data-prompt=\"{esc(entry.prompt or '')}\">"
        + "".join(_cell(column, entry, anchors[entry.position]) for column in cols) + "</tr>"
        for entry in entries
    )
    return (f"<section id=\"table-section\"><h2>Every candidate ({len(entries)})</h2>"
            "<p class=\"note\" data-needs-script hidden>Click a column title to sort by it (again to reverse).</p>"
            f"<div class=\"table-wrap\"><table id=\"candidates-table\"><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div></section>")


def _nav(paths: list[Path], current: int) -> str:
    if len(paths) < 2:
        return ""
    def href(index: int) -> str:
        return link(paths[index], paths[current].parent)

    items = [f"<a href=\"{href(current - 1)}\" rel=\"prev\">&larr; previous</a>"] if current > 0 else []
    items += [f"<strong aria-current=\"page\">{index + 1}</strong>" if index == current
              else f"<a href=\"{href(index)}\">{index + 1}</a>" for index in range(len(paths))]
    if current < len(paths) - 1:
        items.append(f"<a href=\"{href(current + 1)}\" rel=\"next\">next &rarr;</a>")
    return f"<nav class=\"pages\" aria-label=\"pages\">{' '.join(items)}</nav>"


def _remove_stale_pages(path: Path, count: int) -> None:
    """Pages of an earlier, longer run written under the same name would be left unlinked: delete them."""
    pattern = re.compile(rf"{re.escape(path.stem)}_p(\d{{3,}}){re.escape(path.suffix)}")
    for old in path.parent.glob(f"{path.stem}_p*{path.suffix}"):
        match = pattern.fullmatch(old.name)
        if match and int(match.group(1)) > count:
            old.unlink()


def write_gallery(
    records: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    settings: Mapping[str, Any] | None = None,
    title: str | None = None,
    higher_is_better: bool = True,
    page_size: int = DEFAULT_PAGE_SIZE,
    posters: bool = True,
    progress: bool = False,
) -> list[Path]:
    """Write the results page of a run to ``path`` (``.html``) and return the pages written.

    ``records`` are the run's per-candidate rows (best-of-N's ``results.json`` rows; see
    ``reward.gallery.entries`` for the keys), ``file`` relative to the page's folder or absolute.
    Per prompt the candidates are shown best first as looping muted players with their rank, seed,
    score, components and extras; a table lists every candidate (sortable by any column), a filter
    narrows the page to matching prompts, and ``settings`` are printed as a table. Runs with more
    than ``page_size`` candidates continue on ``<stem>_p002.html``, ... (the table on the first
    page still lists them all). ``posters`` writes each video's first frame to ``<stem>_posters/``.
    The pages open from disk (no server, nothing fetched); the basic ranked view needs no
    JavaScript. Every page is written atomically.
    """
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"a gallery page must be an .html file, got {path}")
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    page_dir = path.parent
    entries = to_entries(records, page_dir, higher_is_better=higher_is_better)
    poster_dir = page_dir / f"{path.stem}_posters" if posters else None
    media = {e.position: prepare(e.file, page_dir, poster_dir)
             for e in tqdm(entries, desc="gallery", unit="video", disable=not progress)}
    pages = _paginate(prompt_groups(entries), page_size)
    paths = page_paths(path, len(pages))
    anchors = {e.position: f"{link(paths[index], page_dir) if index else ''}#c{e.position}"
               for index, page in enumerate(pages) for part in page for e in part.entries}
    title = title or f"{len(entries)} scored videos"
    prompts = len({e.prompt for e in entries})
    table_entries = [e for page in pages for part in page for e in part.entries]
    for index, (page, page_path) in enumerate(zip(pages, paths)):
        shown = sum(len(part.entries) for part in page)
        summary = f"{len(entries)} candidates of {prompts} prompt{'s' if prompts != 1 else ''}"
        if len(pages) > 1:
            summary += f"; page {index + 1} of {len(pages)} ({shown} candidates)"
        first_page = f"<a href=\"{link(paths[0], page_dir)}\">the first page</a>"
        table = (_table(table_entries, columns(entries, higher_is_better), anchors) if index == 0 else
                 f"<p class=\"note\">The table of every candidate is on {first_page}.</p>")
        nav = _nav(paths, index)
        body = "\n".join([
            f"<header><h1>{esc(title)}</h1><p class=\"summary\">{esc(summary)}</p></header>",
            "<noscript><p class=\"note\">JavaScript is off: the ranked view below works; sorting, the filter "
            "and autoplay need it.</p></noscript>",
            _settings_block(settings),
            "<div class=\"controls\" data-needs-script hidden><label>Filter prompts "
            "<input type=\"search\" id=\"prompt-filter\" placeholder=\"words in the prompt\" autocomplete=\"off\">"
            "</label><span id=\"filter-count\" aria-live=\"polite\"></span></div>",
            nav,
            "<main id=\"gallery\">" + "".join(_group(part, media, page_dir) for part in page) + "</main>",
            nav,
            table,
        ])
        atomic_write_text(page_path, document(f"{title} (page {index + 1})" if len(pages) > 1 else title, body))
    _remove_stale_pages(path, len(pages))
    return paths
