"""The torch Dataset and the resumable epoch sampler the runner trains on."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .augment import VideoAugment
from .items import QualityItem
from .media import FrameLoader
from .normalization import MosStats

#: A dataset key: an item index, or ``(epoch, index)`` from ``EpochSampler`` (seeds augmentation).
Key = int | tuple[int, int]


def mixed_seed(*parts: int) -> int:
    """One well-mixed 63-bit seed from several integers (seed, epoch, index ...)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class QualityDataset(Dataset):
    """Items -> ``{"videos" [T,3,H,W], "prompts", "mos", "target", "index"}``.

    ``target`` is the MOS normalised with ``mos_stats`` (the MOS itself when None). With
    ``augment``, each (epoch, index) key gets its own seeded draw, so a resumed run sees the
    same augmented samples as an uninterrupted one.
    """

    def __init__(
        self,
        items: Sequence[QualityItem],
        loader: FrameLoader,
        *,
        mos_stats: MosStats | None = None,
        augment: VideoAugment | None = None,
        seed: int = 0,
    ):
        self.items = list(items)
        self.loader = loader
        self.mos_stats = mos_stats
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: Key) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        item = self.items[index]
        video = self.loader(item)
        if self.augment is not None:
            generator = torch.Generator().manual_seed(mixed_seed(self.seed, epoch, index))
            video = self.augment(video, generator)
        target = self.mos_stats.normalize(item.mos) if self.mos_stats is not None else item.mos
        return {
            "videos": video,
            "prompts": item.prompt,
            "mos": torch.tensor(item.mos, dtype=torch.float32),
            "target": torch.tensor(target, dtype=torch.float32),
            "index": index,
        }


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` keys: a permutation seeded by (seed, epoch), or the identity order.

    Every process draws the same permutation (accelerate then shards the batches), and a run
    resumed mid-epoch rebuilds it exactly from the epoch number.
    """

    def __init__(self, size: int, *, seed: int = 0, shuffle: bool = True):
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(mixed_seed(self.seed, self.epoch)))
        else:
            order = torch.arange(self.size)
        return iter([(self.epoch, int(i)) for i in order])
