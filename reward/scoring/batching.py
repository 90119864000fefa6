"""Grouping decoded videos into batches of one shape, so no video is padded or resized to fit.

Padding would change what a quality model sees (black borders, repeated frames) and so its
score; instead videos wait in a bucket per ``(T, H, W)`` until the bucket holds ``batch_size`` (planned clips
per source length and clip shape: equal lengths have equal plans).
To bound memory, once more than ``max_pending`` videos wait, the bucket holding the oldest one
is scored as a smaller batch. Batch composition only changes scores by float rounding.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from .dataset import Decoded, shape_key


def batches_by_shape(decoded: Iterable[Decoded], batch_size: int, max_pending: int | None = None) -> Iterator[list[Decoded]]:
    """Yield lists of same-shape decoded videos (at most ``batch_size``), oldest bucket first at the end."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    max_pending = max(max_pending or 4 * batch_size, batch_size)
    buckets: dict[tuple[int, ...], list[Decoded]] = {}
    pending = 0
    for entry in decoded:
        key = shape_key(entry.video)
        bucket = buckets.setdefault(key, [])
        bucket.append(entry)
        pending += 1
        if len(bucket) == batch_size:
            pending -= len(bucket)
            yield buckets.pop(key)
        elif pending > max_pending:
            oldest = min(buckets, key=lambda shape: buckets[shape][0].index)
            pending -= len(buckets[oldest])
            yield buckets.pop(oldest)
    for shape in sorted(buckets, key=lambda shape: buckets[shape][0].index):
        yield buckets[shape]
