"""One section per benchmark in benchmarks/RESULTS.md: each script rewrites only its own heading."""
from __future__ import annotations

import platform
import re
from pathlib import Path

from reward.checkpoints import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(heading: str, body: str, path: Path = RESULTS) -> None:
    """Replace the text under ``heading`` (up to the next ``## `` heading) or append it, atomically."""
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    section = f"{heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    atomic_write_text(path, text.rstrip() + "\n")


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, or the architecture where that is unavailable."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()
