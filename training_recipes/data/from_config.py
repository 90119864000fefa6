"""The ``data:`` section of a recipe -> items, the chosen split, MOS statistics and datasets."""
from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from reward.errors import DatasetError

from .augment import VideoAugment
from .dataset import QualityDataset
from .items import QualityItem, read_image_table, read_t2vqa_db, read_table
from .media import FrameLoader, FramePrep
from .normalization import MosStats
from .splits import Split, kfold_split, random_split

PARTS = ("train", "val", "test", "all")


def read_items(data: DictConfig) -> list[QualityItem]:
    """Read the annotations named by ``data.format`` / ``data.path``."""
    if data.format == "synthetic":
        from ..synthetic import synthetic_items

        return synthetic_items(**data.synthetic)
    if data.path is None:
        raise DatasetError(f"data.path is not set; give the {data.format} annotations (data.path=/path/to/...)")
    columns = tuple(data.columns) if data.columns is not None else None
    if data.format == "t2vqa":
        return read_t2vqa_db(data.path, annotations=data.annotations, videos=data.videos)
    if data.format == "image_table":
        return read_image_table(data.path, data.root, **({"columns": columns} if columns else {}))
    if data.format == "manifest":
        return read_table(data.path, data.root, **({"columns": columns} if columns else {}))
    raise DatasetError(f"unknown data.format {data.format!r}; use manifest, t2vqa, image_table or synthetic")


def make_split(items: list[QualityItem], split: DictConfig) -> Split:
    """The split selected by ``data.split`` (protocol, index, fractions, seed, grouping)."""
    groups = [item.prompt for item in items] if split.group_by == "prompt" else None
    if split.group_by not in (None, "prompt"):
        raise DatasetError(f"data.split.group_by must be null or 'prompt', got {split.group_by!r}")
    if split.protocol == "random":
        if not 0 <= split.index < split.num_splits:
            raise DatasetError(f"data.split.index {split.index} is outside the {split.num_splits} random splits")
        return random_split(
            len(items), split.index, train_fraction=split.train_fraction, val_fraction=split.val_fraction, seed=split.seed, groups=groups
        )
    if split.protocol == "kfold":
        return kfold_split(len(items), split.index, split.k, seed=split.seed, groups=groups)
    if split.protocol == "file":
        chosen = Split.load(split.file)
        largest = max(chosen.train + chosen.val + chosen.test)
        if largest >= len(items):
            raise DatasetError(f"split file {split.file} names item {largest}, but the dataset has {len(items)} items")
        return chosen
    raise DatasetError(f"unknown data.split.protocol {split.protocol!r}; use random, kfold or file")


@dataclass
class RecipeData:
    """Everything the runner needs from the data section."""

    items: list[QualityItem]
    split: Split
    loader: FrameLoader
    mos_stats: MosStats | None
    augment: VideoAugment | None
    seed: int

    def indices(self, part: str) -> tuple[int, ...]:
        if part not in PARTS:
            raise DatasetError(f"unknown split part {part!r}; choose one of {PARTS}")
        if part == "all":
            return tuple(range(len(self.items)))
        chosen = getattr(self.split, part)
        if not chosen:
            raise DatasetError(f"the {part!r} part of this split is empty (set data.split.val_fraction for a validation part)")
        return chosen

    def dataset(self, part: str, *, training: bool = False) -> QualityDataset:
        """The items of ``part``; augmentation only when ``training``."""
        return QualityDataset(
            [self.items[i] for i in self.indices(part)],
            self.loader,
            mos_stats=self.mos_stats,
            augment=self.augment if training else None,
            seed=self.seed,
        )


def build_data(data: DictConfig, *, seed: int = 0, mos_stats: MosStats | None = None, verify: bool = True) -> RecipeData:
    """Read, split and check the data; fit MOS statistics on the training part unless given."""
    items = read_items(data)
    split = make_split(items, data.split)
    size = tuple(data.size) if data.size is not None else None
    loader = FrameLoader(FramePrep(num_frames=data.num_frames, size=size), cache_dir=data.cache_dir)
    if verify and data.verify != "none":
        loader.verify(items, decode=data.verify == "decode")
    if data.normalize_mos and mos_stats is None:
        mos_stats = MosStats.fit([items[i].mos for i in split.train])
    augment = None
    if data.augment.enabled:
        settings = {k: v for k, v in data.augment.items() if k != "enabled"}
        augment = VideoAugment(**{**settings, "crop_scale": tuple(settings["crop_scale"])})
    return RecipeData(items, split, loader, mos_stats if data.normalize_mos else None, augment, seed)
