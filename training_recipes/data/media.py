"""Decoding rated media into fixed-size frame stacks, with an on-disk cache and an up-front file check."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from reward.checkpoints import load_safetensors, save_safetensors
from reward.errors import DatasetError
from reward.frame_plan import FramePlan, source_length, take_frames
from reward.video.io import read_video
from reward.video.resize import resize_frames
from reward.video.sampling import uniform_frame_indices

from .items import QualityItem

#: How many bad files an error message lists before summarising (all are on ``error.bad_items``).
MAX_NAMED = 20

Reader = Callable[[Path], torch.Tensor]


@dataclass(frozen=True)
class FramePrep:
    """How every item is prepared: ``num_frames`` sampled uniformly (None: all) and resized to ``size`` (None: native)."""

    num_frames: int | None = 16
    size: tuple[int, int] | None = None

    def frame_plan(self, num_frames: int) -> FramePlan:
        """The frames ``apply`` keeps of a ``num_frames``-frame video (only they are decoded from a file)."""
        return FramePlan.of(num_frames, uniform_frame_indices(num_frames, self.num_frames or num_frames))

    def apply(self, frames: torch.Tensor, plan: FramePlan | None = None) -> torch.Tensor:
        """Prepared frames of a video [T, 3, H, W], or of ``plan``'s compact clip of it."""
        if self.num_frames is not None:
            length = source_length(frames[None], plan)
            frames = take_frames(frames[None], uniform_frame_indices(length, self.num_frames), plan)[0]
        if self.size is not None:
            frames = resize_frames(frames, tuple(self.size))
        return frames.clamp(0, 1)


class FrameLoader:
    """Turns a ``QualityItem`` into prepared frames ``[T, 3, H, W]`` in [0, 1].

    Decoded files are cached in ``cache_dir`` as uint8 safetensors keyed by the file's path,
    size, modification time and the preparation settings, so a changed file or setting is
    decoded again. By default only the ``num_frames`` frames kept are decoded
    (``read_video(path, frames=prep.frame_plan)``: video files, frame folders and images); a
    ``reader`` decodes a whole path to ``[T, 3, H, W]`` in [0, 1] instead.
    """

    def __init__(self, prep: FramePrep = FramePrep(), *, reader: Reader | None = None, cache_dir: str | Path | None = None):
        self.prep = prep
        self.reader = reader
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None

    def __call__(self, item: QualityItem) -> torch.Tensor:
        if isinstance(item.source, torch.Tensor):
            return self.prep.apply(item.source.float())
        cached = self._cache_file(item.source)
        if cached is not None and cached.is_file():
            return load_safetensors(cached)["frames"].float() / 255
        frames = self._decode(item)
        if cached is None:
            return frames
        quantised = (frames * 255).round().to(torch.uint8)
        save_safetensors({"frames": quantised}, cached)
        return quantised.float() / 255

    def _decode(self, item: QualityItem) -> torch.Tensor:
        """Prepared frames of the item's file."""
        if self.reader is None and self.prep.num_frames is not None:
            clip = read_video(item.source, frames=self.prep.frame_plan)
            return self.prep.apply(clip.to_float(), clip.plan)
        frames = (self.reader or read_video)(item.source)
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
            raise DatasetError(f"{item.name}: decoded to shape {tuple(frames.shape)}, expected [T>=1, 3, H, W]")
        return self.prep.apply(frames.float())

    def _cache_file(self, path: Path) -> Path | None:
        if self.cache_dir is None:
            return None
        stat = path.stat()
        key = json.dumps(
            [str(path.resolve()), stat.st_size, stat.st_mtime_ns, self.prep.num_frames, self.prep.size], default=list
        )
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.safetensors"

    def verify(self, items: Sequence[QualityItem], *, decode: bool = True, progress: bool = False) -> None:
        """Check every file before training: all missing or unreadable ones are named in one ``DatasetError``.

        ``decode=True`` decodes each file once (filling the cache); ``False`` only checks existence.
        """
        bad: list[tuple[str, str]] = []
        for item in tqdm(items, desc="checking data", disable=not progress):
            if isinstance(item.source, torch.Tensor):
                continue
            if not item.source.exists():
                bad.append((item.name, "missing"))
                continue
            if decode:
                try:
                    self(item)
                except Exception as error:  # any decoder failure means the file cannot be trained on
                    bad.append((item.name, f"unreadable ({type(error).__name__}: {error})"))
        if bad:
            raise MediaCheckError(bad, len(items))


class MediaCheckError(DatasetError):
    """Some dataset files are missing or unreadable; ``bad_items`` lists every ``(name, reason)``."""

    def __init__(self, bad_items: list[tuple[str, str]], total: int):
        self.bad_items = bad_items
        lines = [f"  {name}: {reason}" for name, reason in bad_items[:MAX_NAMED]]
        if len(bad_items) > MAX_NAMED:
            lines.append(f"  ... and {len(bad_items) - MAX_NAMED} more")
        super().__init__(
            f"{len(bad_items)} of {total} dataset files are missing or unreadable:\n" + "\n".join(lines)
            + "\nFix or remove them from the annotations (or check data.root) before training."
        )
