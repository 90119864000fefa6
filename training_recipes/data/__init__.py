"""Rated media for training and evaluating scorers: readers, decoding cache, splits, normalisation, augmentation."""
from .augment import VideoAugment
from .dataset import EpochSampler, QualityDataset
from .items import QualityItem, read_image_table, read_t2vqa_db, read_table, write_manifest
from .media import FrameLoader, FramePrep, MediaCheckError
from .normalization import MosStats
from .splits import Split, kfold_split, random_split, random_splits

__all__ = [
    "EpochSampler",
    "FrameLoader",
    "FramePrep",
    "MediaCheckError",
    "MosStats",
    "QualityDataset",
    "QualityItem",
    "Split",
    "VideoAugment",
    "kfold_split",
    "random_split",
    "random_splits",
    "read_image_table",
    "read_t2vqa_db",
    "read_table",
    "write_manifest",
]
