"""score_videos: worker decoding, failures as data, shape batching, incremental results, resume."""
from __future__ import annotations

import json

import pytest
import torch
from scoring_videos import write_corrupt, write_mp4, write_zero_frame_mp4

import reward
from reward.errors import RewardInputError, ScoringInputError
from reward.frame_plan import SparseVideo
from reward.scoring import Decoded, VideoDataset, VideoItem, attach_prompts, discover_videos, read_records, score_videos
from reward.scoring.batching import batches_by_shape
from reward.scoring.dataset import PlannedReader, default_reader
from reward.simple import SimpleConfig, StatisticReward
from reward.video.io import read_video


def test_folder_with_good_corrupt_and_zero_frame_videos_scores_the_good_ones(tmp_path):
    folder = tmp_path / "videos"
    write_mp4(folder / "a.mp4", seed=1)
    write_mp4(folder / "b.mp4", frames=3, height=48, width=32, seed=2)
    write_mp4(folder / "c.mp4", seed=3)
    write_corrupt(folder / "bad.mp4")
    write_zero_frame_mp4(folder / "zero.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    model = reward.load("colorfulness")
    run = score_videos(
        model, discover_videos([str(folder)]), out=tmp_path / "r.jsonl", csv=tmp_path / "r.csv",
        batch_size=2, num_workers=2, progress=False,
    )
    names = [r["id"].rsplit("/", 1)[1] for r in run.records]
    assert names == ["a.mp4", "b.mp4", "bad.mp4", "c.mp4", "empty.mp4", "zero.mp4"]
    good = [r for r in run.records if "error" not in r]
    assert [r["id"].rsplit("/", 1)[1] for r in good] == ["a.mp4", "b.mp4", "c.mp4"]
    for record in good:
        expected = model.score(read_video(record["path"])[None]).score.item()
        assert record["score"] == pytest.approx(expected, rel=1e-6)
        assert record["colorfulness"] == record["score"]
    errors = {r["id"].rsplit("/", 1)[1]: r["error"] for r in run.records if "error" in r}
    assert all(error.startswith("VideoReadError: ") for error in errors.values())
    assert "corrupt" in errors["bad.mp4"] and "zero frames" in errors["zero.mp4"]
    assert [item_id.rsplit("/", 1)[1] for item_id, _ in run.summary.failures] == ["bad.mp4", "empty.mp4", "zero.mp4"]
    summary = run.summary
    assert (summary.total, summary.scored, summary.failed) == (6, 3, 3)
    scores = torch.tensor([r["score"] for r in good], dtype=torch.float64)
    assert summary.stats["score"].mean == pytest.approx(scores.mean().item())
    assert summary.stats["score"].std == pytest.approx(scores.std().item())
    assert read_records(tmp_path / "r.jsonl") == run.records
    assert read_records(tmp_path / "r.csv") == run.records


class _Interrupting(StatisticReward):
    """Brightness that counts the videos it scores and raises KeyboardInterrupt on call ``stop_at``."""

    def __init__(self, stop_at: int | None = None):
        super().__init__(SimpleConfig("brightness"))
        self.stop_at, self.calls, self.videos_scored = stop_at, 0, 0

    def _forward(self, videos, prompts):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        self.videos_scored += videos.shape[0]
        return super()._forward(videos, prompts)


def test_interrupt_and_resume_write_each_video_exactly_once(tmp_path):
    items = discover_videos([str(write_mp4(tmp_path / "v" / f"{i}.mp4", seed=i)) for i in range(4)])
    out, table = tmp_path / "r.jsonl", tmp_path / "r.csv"
    options = dict(batch_size=1, num_workers=0, progress=False)
    with pytest.raises(KeyboardInterrupt):
        score_videos(_Interrupting(stop_at=3), items, out=out, csv=table, **options)
    assert len(read_records(out)) == 2
    with out.open("a") as handle:  # a write cut by the interrupt
        handle.write('{"id": "' + items[2].id)
    with pytest.raises(ScoringInputError, match="pass --resume"):
        score_videos(_Interrupting(), items, out=out, **options)

    resumed = _Interrupting()
    run = score_videos(resumed, items, out=out, csv=table, resume=True, **options)
    assert resumed.videos_scored == 2 and run.summary.resumed == 2
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [item.id for item in items]
    expected = [resumed.score(read_video(item.path)[None]).score.item() for item in items]
    assert [r["score"] for r in read_records(out)] == pytest.approx(expected, rel=1e-6)
    assert read_records(out) == read_records(table) == run.records

    again = _Interrupting()
    score_videos(again, items, out=out, csv=table, resume=True, **options)
    assert again.videos_scored == 0 and read_records(out) == run.records


class _NarrowOnly(StatisticReward):
    """Refuses frames wider than 40 px, as a model with a size limit would."""

    def __init__(self):
        super().__init__(SimpleConfig("brightness"))

    def _forward(self, videos, prompts):
        if videos.shape[-1] > 40:
            raise RewardInputError(f"frames {videos.shape[-1]} px wide are too wide")
        return super()._forward(videos, prompts)


def test_a_video_the_reward_rejects_fails_alone_and_the_run_continues(tmp_path):
    wide = write_mp4(tmp_path / "wide.mp4", width=48)
    narrow = write_mp4(tmp_path / "narrow.mp4", width=32)
    run = score_videos(_NarrowOnly(), discover_videos([str(narrow), str(wide)]), batch_size=4, num_workers=0, progress=False)
    assert "score" in run.records[0]
    assert "too wide" in run.records[1]["error"]
    assert run.summary.failed == 1


def _decoded(index: int, shape: tuple[int, ...]) -> Decoded:
    return Decoded(index, VideoItem(str(index), str(index)), video=torch.zeros(shape))


def test_batches_group_one_shape_and_bound_the_waiting_videos():
    small, large = (2, 3, 4, 4), (2, 3, 8, 8)
    stream = [_decoded(i, shape) for i, shape in enumerate([small, large, small, small, large, small])]
    batches = [[d.index for d in batch] for batch in batches_by_shape(stream, batch_size=2)]
    assert batches == [[0, 2], [1, 4], [3, 5]]
    stream = [_decoded(i, (2, 3, 4, 4 + i)) for i in range(5)]
    batches = [[d.index for d in batch] for batch in batches_by_shape(stream, batch_size=2, max_pending=3)]
    assert batches == [[0], [1], [2], [3], [4]]


def test_resume_folds_in_the_journal_of_an_interrupted_multi_process_run(tmp_path):
    items = discover_videos([str(write_mp4(tmp_path / "v" / f"{i}.mp4", seed=i)) for i in range(3)])
    out = tmp_path / "r.jsonl"
    journal = tmp_path / ".r.jsonl.rank1.journal.jsonl"
    done = {"id": items[2].id, "path": items[2].path, "score": 0.25, "brightness": 0.25}
    journal.write_text(json.dumps(done) + "\n" + '{"id": "cut')
    model = _Interrupting()
    run = score_videos(model, items, out=out, resume=True, batch_size=2, num_workers=0, progress=False)
    assert model.videos_scored == 2 and not journal.exists()
    assert [r["id"] for r in run.records] == [item.id for item in items] and run.records[2] == done


def test_scoring_decodes_only_the_planned_frames_and_matches_decoding_every_frame(tmp_path):
    shapes = [(40, 32, 48), (40, 32, 48), (25, 48, 32), (40, 32, 48), (25, 48, 32)]
    for index, (frames, height, width) in enumerate(shapes):
        write_mp4(tmp_path / "v" / f"{index}.mp4", frames=frames, height=height, width=width, seed=index)
    items = attach_prompts(discover_videos([str(tmp_path / "v")]), prompt="a test clip")
    model = reward.load("aigc-vqa-tiny", pretrained=False)
    decoded = VideoDataset(list(enumerate(items)), PlannedReader(model))[0].video
    assert isinstance(decoded, SparseVideo) and decoded.num_frames == 40 and len(decoded.plan) == 12
    options = dict(batch_size=2, num_workers=2, progress=False)
    sparse = score_videos(model, items, **options).records
    full = score_videos(model, items, reader=default_reader, **options).records
    assert [r["id"] for r in sparse] == [r["id"] for r in full]
    for planned, whole in zip(sparse, full):
        assert {k: v for k, v in planned.items() if isinstance(v, str)} == {k: v for k, v in whole.items() if isinstance(v, str)}
        for key in ("score", "technical", "aesthetic", "alignment"):
            assert planned[key] == pytest.approx(whole[key], abs=1e-6)
