"""Frame selections written as strings (configs, command lines): ``"all"``, ``"stride:2"``, ``"random:4"``..."""
from __future__ import annotations

from integrations.diffusers.frames import FrameSelection

#: String form -> FrameSelection constructor taking one integer.
_BUILDERS = {
    "stride": FrameSelection.stride,
    "first": FrameSelection.first,
    "uniform": FrameSelection.uniform,
    "random": FrameSelection.random,
}


def parse_frames(spec: "str | FrameSelection | None") -> FrameSelection:
    """``"all"`` / ``"stride:N"`` / ``"first:K"`` / ``"uniform:K"`` / ``"random:K"`` -> ``FrameSelection``."""
    if spec is None or isinstance(spec, FrameSelection):
        return spec or FrameSelection.all()
    mode, _, count = spec.strip().partition(":")
    if mode == "all" and not count:
        return FrameSelection.all()
    if mode not in _BUILDERS:
        raise ValueError(f"unknown frame selection {spec!r}; use 'all' or one of {sorted(_BUILDERS)} with ':N', e.g. 'stride:2'")
    if not count.strip().isdigit():
        raise ValueError(f"frame selection {spec!r} needs an integer after ':', e.g. '{mode}:2'")
    return _BUILDERS[mode](int(count))
