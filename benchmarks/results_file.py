"""benchmarks/RESULTS.md: one ``## heading`` section per benchmark, each replaced on its own."""
from __future__ import annotations

from pathlib import Path

from reward.checkpoints import atomic_write_text


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace (or append) the section starting with ``heading`` in ``path``, keeping every other section."""
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    start = text.find(heading + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    atomic_write_text(path, text)
