"""Training data: annotation readers, file checks that name files, seeded splits, MOS statistics, augmentation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reward.errors import DatasetError
from reward.video.io import write_image
from training_recipes.data import (
    EpochSampler,
    FrameLoader,
    FramePrep,
    MediaCheckError,
    MosStats,
    QualityDataset,
    QualityItem,
    Split,
    VideoAugment,
    kfold_split,
    random_split,
    random_splits,
    read_image_table,
    read_t2vqa_db,
    read_table,
)
from reward.metrics import srocc
from training_recipes.synthetic import (
    DEGRADATION_WEIGHTS,
    SyntheticFactors,
    sample_factors,
    synthetic_items,
    synthetic_mos,
    write_synthetic_dataset,
)


def _png(path, value=0.5, size=(10, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image(path, torch.full((3, *size), value))


# -- readers ------------------------------------------------------------------------------------
def test_t2vqa_reader_parses_lines_and_keeps_pipes_inside_prompts(tmp_path):
    (tmp_path / "info.txt").write_text("0001.mp4|a cat | a dog|3.5\n\n0002.mp4|sunset over sea|61.25\n")
    items = read_t2vqa_db(tmp_path)
    assert [i.source for i in items] == [tmp_path / "videos" / "0001.mp4", tmp_path / "videos" / "0002.mp4"]
    assert [i.prompt for i in items] == ["a cat | a dog", "sunset over sea"]
    assert [i.mos for i in items] == [3.5, 61.25]


@pytest.mark.parametrize(
    "line, message", [("0001.mp4|3.5", r"info.txt:1: expected 'filename\|prompt\|mos'"), ("a.mp4|cat|good", "'good' is not a number"), ("a.mp4| |2", "prompt is empty")]
)
def test_t2vqa_reader_errors_name_the_line(tmp_path, line, message):
    (tmp_path / "info.txt").write_text(line + "\n")
    with pytest.raises(DatasetError, match=message):
        read_t2vqa_db(tmp_path)


def test_table_readers_csv_jsonl_and_image_table(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "v/a.mp4", "prompt": "p", "mos": 2, "model": "x"}) + "\n")
    (item,) = read_table(tmp_path / "m.jsonl")
    assert item.source == tmp_path / "v" / "a.mp4" and item.mos == 2.0 and item.extra == {"model": "x"}
    (tmp_path / "aigiqa.csv").write_text('name,prompt,mos\nimg1.png,"a red car, at night",71.5\n')
    (image,) = read_image_table(tmp_path / "aigiqa.csv", tmp_path / "images")
    assert image.source == tmp_path / "images" / "img1.png" and image.prompt == "a red car, at night"
    with pytest.raises(DatasetError, match=r"missing columns \['path'\]"):
        read_table(tmp_path / "aigiqa.csv")
    (tmp_path / "wide.csv").write_text("path,prompt,mos\na.mp4,p,1,extra\n")
    with pytest.raises(DatasetError, match="wide.csv:2: expected one value per header column"):
        read_table(tmp_path / "wide.csv")
    with pytest.raises(DatasetError, match="export it as CSV"):
        (tmp_path / "t.xlsx").write_bytes(b"x")
        read_table(tmp_path / "t.xlsx")



def test_csv_table_keeps_line_breaks_inside_quoted_prompts_and_errors_name_the_file_line(tmp_path):
    (tmp_path / "m.csv").write_text('path,prompt,mos\na.mp4,"line one\nline two",3\n\nb.mp4,x\u2028y,4\n')
    assert [item.prompt for item in read_table(tmp_path / "m.csv")] == ["line one\nline two", "x\u2028y"]
    (tmp_path / "bad.csv").write_text('path,prompt,mos\na.mp4,"line one\nline two",3\n\nb.mp4,p,good\n')
    with pytest.raises(DatasetError, match="bad.csv:5: MOS 'good' is not a number"):
        read_table(tmp_path / "bad.csv")

def test_missing_and_unreadable_files_are_all_named_before_training(tmp_path):
    good = _png(tmp_path / "good.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    items = [QualityItem(good, "p", 1.0), QualityItem(tmp_path / "gone.png", "p", 2.0), QualityItem(broken, "p", 3.0)]
    with pytest.raises(MediaCheckError) as caught:
        FrameLoader(FramePrep(num_frames=1)).verify(items)
    message = str(caught.value)
    assert "2 of 3 dataset files" in message and "gone.png: missing" in message and "broken.png: unreadable" in message
    assert "good.png" not in message
    assert [name for name, _ in caught.value.bad_items] == [str(tmp_path / "gone.png"), str(broken)]
    with pytest.raises(MediaCheckError, match="gone.png"):
        FrameLoader().verify(items, decode=False)


# -- decoding and caching -------------------------------------------------------------------------
def test_frame_loader_samples_resizes_and_caches(tmp_path):
    calls = []

    def reader(path):
        calls.append(path)
        return torch.linspace(0, 1, 5).view(5, 1, 1, 1).expand(5, 3, 8, 6).clone()

    item = QualityItem(_png(tmp_path / "clip.png"), "p", 1.0)
    loader = FrameLoader(FramePrep(num_frames=3, size=(4, 4)), reader=reader, cache_dir=tmp_path / "cache")
    first = loader(item)
    second = loader(item)
    assert first.shape == (3, 3, 4, 4) and len(calls) == 1
    assert torch.allclose(first[:, 0, 0, 0], torch.tensor([0.0, 0.5, 1.0]), atol=1 / 255)
    assert torch.equal(first, second)
    other = FrameLoader(FramePrep(num_frames=2, size=(4, 4)), reader=reader, cache_dir=tmp_path / "cache")
    assert other(item).shape[0] == 2 and len(calls) == 2


def test_frame_loader_decodes_only_the_frames_it_keeps(tmp_path, monkeypatch):
    """The default loader reads ``num_frames`` planned frames of a file: the same frames and cache as a full read."""
    from video_files import write_clip

    import reward.video.io as video_io

    item = QualityItem(write_clip(tmp_path / "clip.mp4", frames=60, height=32, width=48), "p", 1.0)
    prep = FramePrep(num_frames=6, size=(16, 16))
    whole = FrameLoader(prep, reader=video_io.read_video)(item)
    monkeypatch.setattr(video_io, "read_video_uint8", lambda *a, **k: pytest.fail("decoded every frame"))
    assert torch.equal(FrameLoader(prep)(item), whole)
    cached = FrameLoader(prep, cache_dir=tmp_path / "cache")
    quantised = (whole * 255).round() / 255
    assert torch.equal(cached(item), quantised) and torch.equal(cached(item), quantised)  # decoded, then from the cache
    assert len(list((tmp_path / "cache").iterdir())) == 1


# -- splits ---------------------------------------------------------------------------------------
def test_random_splits_are_seeded_disjoint_and_cover_everything():
    splits = random_splits(50, num_splits=10, seed=3)
    assert splits == random_splits(50, num_splits=10, seed=3)
    assert splits != random_splits(50, num_splits=10, seed=4)
    assert len({s.test for s in splits}) == 10
    for split in splits:
        assert len(split.train) == 40 and len(split.test) == 10
        assert not set(split.train) & set(split.test) and set(split.train) | set(split.test) == set(range(50))
    assert random_split(50, 7, seed=3) == splits[7]
    with_val = random_split(50, 0, val_fraction=0.1)
    assert (len(with_val.train), len(with_val.val), len(with_val.test)) == (35, 5, 10)
    assert not set(with_val.val) & (set(with_val.train) | set(with_val.test))


def test_groups_never_straddle_a_split_and_kfold_partitions(tmp_path):
    prompts = [f"prompt {i // 5}" for i in range(40)]
    split = random_split(40, 0, groups=prompts)
    assert not {prompts[i] for i in split.train} & {prompts[i] for i in split.test}
    folds = [kfold_split(23, fold, k=5, seed=1) for fold in range(5)]
    tests = [set(f.test) for f in folds]
    assert sorted(i for t in tests for i in t) == list(range(23))
    assert all(not set(f.train) & set(f.test) for f in folds)
    assert Split.load(folds[2].save(tmp_path / "s.json")) == folds[2]
    with pytest.raises(DatasetError, match="fold < k"):
        kfold_split(23, 5, k=5)


# -- MOS statistics, augmentation, dataset ------------------------------------------------------------
def test_mos_stats_fit_round_trip(tmp_path):
    stats = MosStats.fit([1.0, 2.0, 3.0, 4.0])
    assert stats.mean == 2.5 and stats.std == pytest.approx(np.std([1, 2, 3, 4]))
    assert stats.denormalize(stats.normalize(3.7)) == pytest.approx(3.7)
    stats.save(tmp_path)
    assert MosStats.load(tmp_path) == stats and MosStats.load(tmp_path / "none") is None
    with pytest.raises(DatasetError, match="all training MOS values are equal"):
        MosStats.fit([2.0, 2.0])


def test_augment_is_seeded_same_for_all_frames_and_in_range():
    video = torch.rand(4, 3, 16, 20)
    video[1] = video[0]
    augment = VideoAugment(hflip=1.0)
    out = augment(video, torch.Generator().manual_seed(1))
    assert out.shape == video.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[0], out[1]) and not torch.equal(out, video)
    assert torch.equal(out, augment(video, torch.Generator().manual_seed(1)))
    flip_only = VideoAugment(hflip=1.0, crop_scale=(1.0, 1.0), brightness=0.0, contrast=0.0)
    assert torch.allclose(flip_only(video, torch.Generator()), video.flip(-1), atol=1e-6)


def test_dataset_normalises_targets_and_augments_per_epoch():
    items = synthetic_items(6, frames=4, size=16)
    stats = MosStats.fit([i.mos for i in items])
    dataset = QualityDataset(items, FrameLoader(FramePrep(num_frames=2)), mos_stats=stats, augment=VideoAugment(), seed=5)
    sample = dataset[(0, 3)]
    assert sample["videos"].shape == (2, 3, 16, 16) and sample["prompts"] == items[3].prompt
    assert float(sample["target"]) == pytest.approx(stats.normalize(items[3].mos), abs=1e-6)
    assert torch.equal(dataset[(0, 3)]["videos"], sample["videos"])
    assert not torch.equal(dataset[(1, 3)]["videos"], sample["videos"])
    sampler = EpochSampler(6, seed=2)
    first = list(sampler)
    sampler.set_epoch(1)
    assert sorted(i for _, i in first) == list(range(6)) and [i for _, i in sampler] != [i for _, i in first]
    assert [k for k in EpochSampler(3, shuffle=False)] == [(0, 0), (0, 1), (0, 2)]


# -- synthetic data -------------------------------------------------------------------------------
def test_synthetic_mos_is_the_documented_function_and_items_are_seeded():
    perfect = SyntheticFactors("red", "circle", "red", "circle", 0.0, 0.0, 0.0, 0.0)
    assert synthetic_mos(perfect) == pytest.approx(5.0)
    wrong = SyntheticFactors("red", "circle", "blue", "square", 1.0, 1.0, 1.0, 1.0)
    assert synthetic_mos(wrong) == pytest.approx(1.0)
    half = SyntheticFactors("red", "circle", "blue", "circle", 0.5, 0.0, 0.0, 0.0)
    assert synthetic_mos(half, alignment_weight=0.5) == pytest.approx(1 + 4 * (0.5 * (1 - 0.175) + 0.5 * 0.25))
    a, b = synthetic_items(5, seed=1), synthetic_items(5, seed=1)
    assert all(torch.equal(x.source, y.source) and x.mos == y.mos for x, y in zip(a, b))
    assert a[0].source.shape == (8, 3, 32, 32) and 0 <= float(a[0].source.min()) and float(a[0].source.max()) <= 1
    assert len({i.prompt for i in synthetic_items(40, frames=1, size=8)}) > 4


def test_a_scorer_blind_to_the_prompt_cannot_pass_srocc_065():
    factors = [sample_factors(np.random.default_rng([0, i])) for i in range(3000)]
    mos = [synthetic_mos(f) for f in factors]
    perfect_quality = [-sum(w * getattr(f, name) for name, w in DEGRADATION_WEIGHTS.items()) for f in factors]
    assert 0.6 < srocc(perfect_quality, mos) < 0.67
    colour_aware = [q + 0.3 / 0.7 * 0.75 * (f.colour == f.prompt_colour) for q, f in zip(perfect_quality, factors)]
    assert srocc(colour_aware, mos) > 0.95


@pytest.mark.parametrize("video_format, tolerance", [("frames", 0.5 / 255), ("mp4", 0.13)])
def test_written_synthetic_dataset_reads_back_through_the_manifest(tmp_path, video_format, tolerance):
    manifest = write_synthetic_dataset(tmp_path / "synthetic", 3, frames=4, size=16, video_format=video_format)
    items = read_table(manifest)
    originals = synthetic_items(3, frames=4, size=16)
    loader = FrameLoader(FramePrep(num_frames=None))
    loader.verify(items)
    for item, original in zip(items, originals):
        assert item.prompt == original.prompt and item.mos == pytest.approx(original.mos) and item.extra["colour"]
        assert (loader(item) - original.source).abs().mean() <= tolerance
