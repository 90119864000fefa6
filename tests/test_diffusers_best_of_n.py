"""best_of_n on a tiny offline pipeline: ranking, saved files, contact sheets, resume, seeds."""
from __future__ import annotations

import csv
import json

import pytest
import torch

import reward
from integrations.diffusers import build_tiny_pipeline, tiny_generation_kwargs
from integrations.diffusers.best_of_n import SEED_STRIDE, best_of_n, candidate_seed
from integrations.diffusers.contact_sheet import GAP, LABEL_WIDTH, LINE_HEIGHT, MARGIN, row_height
from integrations.diffusers.video_files import read_video
from reward.checkpoints import load_safetensors
from tests.diffusers_support import one_thread  # noqa: F401  (autouse fixture)

FAMILY = "wan"
PROMPTS = ["a red fox in snow", "a blue car"]


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pipeline(FAMILY)


GENERATION = dict(tiny_generation_kwargs(FAMILY), num_inference_steps=2)


class CountingPipe:
    """Forwards to a pipeline, counting generated videos; optionally fails on a given call."""

    def __init__(self, pipe, fail_on_call: int | None = None):
        self.pipe, self.fail_on_call = pipe, fail_on_call
        self.calls, self.videos = 0, 0

    def __call__(self, prompt, **kwargs):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("simulated crash")
        self.videos += len(prompt)
        return self.pipe(prompt=prompt, **kwargs)


@pytest.fixture(scope="module")
def saved_run(pipe, tmp_path_factory):
    out = tmp_path_factory.mktemp("bon")
    result = best_of_n(
        pipe, PROMPTS, "colorfulness", n=3, batch_size=2, seed=7, top_k=2, out_dir=out, save_tensors=True,
        progress=False, **GENERATION,
    )
    return result, out


def test_ranking_equals_rescoring_the_saved_tensors(saved_run):
    result, out = saved_run
    model = reward.load("colorfulness")
    for i in range(len(PROMPTS)):
        ranked = result.for_prompt(i)
        saved = torch.stack([load_safetensors(c.file.with_suffix(".safetensors"))["video"] for c in ranked])
        rescored = model.score(saved).score
        assert torch.allclose(rescored, torch.tensor([c.score for c in ranked]), atol=1e-4)
        assert rescored.argsort(descending=True).tolist() == list(range(len(ranked)))
        assert [c.rank for c in ranked] == [1, 2, 3]


def test_every_candidate_is_saved_as_a_readable_mp4(saved_run):
    result, _ = saved_run
    size = tiny_generation_kwargs(FAMILY)
    for candidate in result.candidates:
        exact = load_safetensors(candidate.file.with_suffix(".safetensors"))["video"]
        video = read_video(candidate.file)
        assert video.shape == (size["num_frames"], 3, size["height"], size["width"]) == exact.shape
        assert abs(float(video.mean()) - float(exact.mean())) < 0.05


def test_results_tables_hold_one_row_per_candidate(saved_run):
    result, out = saved_run
    with open(result.table_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["prompt", "seed", "rank", "score", "colorfulness", "file"]
    assert len(rows) == len(PROMPTS) * 3
    for row, candidate in zip(rows, result.candidates):
        assert row["prompt"] == candidate.prompt and int(row["seed"]) == candidate.seed
        assert int(row["rank"]) == candidate.rank and float(row["score"]) == pytest.approx(candidate.score)
        assert (out / row["file"]).is_file()
    table = json.loads(result.table_json.read_text())
    assert table["seed_rule"].startswith("seed = base_seed") and table["n"] == 3
    assert [r["seed"] for r in table["candidates"]] == [int(r["seed"]) for r in rows]
    assert [c.rank for c in result.top] == [1, 2, 1, 2] and [c.rank for c in result.best] == [1, 1]


def test_contact_sheet_per_prompt_has_the_expected_size(saved_run):
    from PIL import Image

    result, _ = saved_run
    size = tiny_generation_kwargs(FAMILY)
    assert len(result.contact_sheets) == len(PROMPTS)
    frames_shown, thumb = min(8, size["num_frames"]), 96
    thumb_width = round(size["width"] * thumb / size["height"])
    lines = 3  # rank + seed, score, one component
    expected_width = LABEL_WIDTH + frames_shown * thumb_width + (frames_shown - 1) * GAP
    expected_height = LINE_HEIGHT + 2 * MARGIN + 3 * row_height(lines, thumb) + 2 * GAP
    for path in result.contact_sheets:
        with Image.open(path) as image:
            assert image.size == (expected_width, expected_height)


def test_seed_reproduces_a_candidate_alone(pipe):
    result = best_of_n(pipe, PROMPTS, "brightness", n=3, batch_size=3, seed=5, progress=False, **GENERATION)
    candidate = result.for_prompt(1)[-1]
    assert candidate.seed == candidate_seed(5, 1, candidate.candidate_index) == 5 + SEED_STRIDE + candidate.candidate_index
    alone = pipe(candidate.prompt, generator=torch.Generator().manual_seed(candidate.seed), output_type="pt", **GENERATION)
    assert torch.allclose(alone.frames[0], candidate.video, atol=1e-5)
    assert result.out_dir is None and all(c.file is None for c in result.candidates)


def test_resume_regenerates_nothing_already_done(pipe, tmp_path):
    first = CountingPipe(pipe)
    done = best_of_n(first, PROMPTS, "brightness", n=2, batch_size=2, out_dir=tmp_path, progress=False, **GENERATION)
    assert first.videos == 4 and done.generated == 4
    again = CountingPipe(pipe)
    more = best_of_n(again, PROMPTS, "brightness", n=3, batch_size=2, out_dir=tmp_path, progress=False, **GENERATION)
    assert again.videos == 2 and more.generated == 2 and len(more.candidates) == 6
    old_scores = {(c.prompt_index, c.candidate_index): c.score for c in done.candidates}
    for c in more.candidates:
        if (c.prompt_index, c.candidate_index) in old_scores:
            assert c.score == old_scores[(c.prompt_index, c.candidate_index)]


def test_interrupted_run_resumes_where_it_stopped(pipe, tmp_path):
    crashing = CountingPipe(pipe, fail_on_call=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        best_of_n(crashing, PROMPTS, "brightness", n=2, batch_size=2, out_dir=tmp_path, progress=False, **GENERATION)
    state = json.loads((tmp_path / "state.json").read_text())
    assert len(state["candidates"]) == 2
    finishing = CountingPipe(pipe)
    resumed = best_of_n(finishing, PROMPTS, "brightness", n=2, batch_size=2, out_dir=tmp_path, progress=False, **GENERATION)
    assert finishing.videos == 2
    straight = best_of_n(pipe, PROMPTS, "brightness", n=2, batch_size=2, progress=False, **GENERATION)
    assert [c.seed for c in resumed.candidates] == [c.seed for c in straight.candidates]
    assert [c.score for c in resumed.candidates] == pytest.approx([c.score for c in straight.candidates], abs=1e-5)


def test_resuming_with_other_settings_is_refused(pipe, tmp_path):
    best_of_n(pipe, PROMPTS[:1], "brightness", n=1, out_dir=tmp_path, progress=False, **GENERATION)
    with pytest.raises(ValueError, match="reward.*resume=False"):
        best_of_n(pipe, PROMPTS[:1], "colorfulness", n=1, out_dir=tmp_path, progress=False, **GENERATION)
    counting = CountingPipe(pipe)
    best_of_n(counting, PROMPTS[:1], "colorfulness", n=1, out_dir=tmp_path, resume=False, progress=False, **GENERATION)
    assert counting.videos == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [({"generator": torch.Generator()}, "seed= instead"), ({"top_k": 5}, "top_k"), ({"n": 0}, "n must be"),
     ({"output_type": "latent"}, "decoded videos")],
)
def test_bad_arguments_say_what_to_do(pipe, kwargs, message):
    arguments = {"n": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        best_of_n(pipe, PROMPTS, "brightness", progress=False, **arguments)


def test_early_pruning_stops_worse_previews_and_leaves_finished_candidates_unchanged(pipe, tmp_path):
    from integrations.diffusers.pruning import EarlyPruning

    generation = dict(GENERATION, num_inference_steps=4)
    rule = EarlyPruning(step=1, keep=1)
    full = best_of_n(pipe, PROMPTS[:1], "brightness", n=6, progress=False, **generation)
    pruned = best_of_n(pipe, PROMPTS[:1], "brightness", n=6, prune=rule, out_dir=tmp_path, progress=False, **generation)
    report = pruned.pruning
    stopped = [c for c in pruned.candidates if not c.finished]
    assert report.checked == 6 and report.pruned == len(stopped) >= 1
    assert report.steps_run == 4 * (6 - len(stopped)) + 1 * len(stopped) and report.preview_calls == 6
    assert report.saved_fraction == pytest.approx(1 - (report.steps_run + 6) / 24)
    assert all(c.file is None and c.pruned_at_step == 1 and c.rank > len(pruned.candidates) - len(stopped) for c in stopped)
    full_scores = {c.seed: c.score for c in full.candidates}
    for candidate in pruned.candidates:
        if candidate.finished:
            assert candidate.score == pytest.approx(full_scores[candidate.seed], abs=1e-6) and candidate.file.is_file()
    # a candidate is stopped only when its preview is worse than an earlier one's
    for candidate in stopped:
        earlier = [c.preview_score for c in pruned.candidates if c.candidate_index < candidate.candidate_index]
        assert candidate.preview_score < max(earlier)
    with open(pruned.table_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["pruned_at_step"] for row in rows} == {"", "1"} and all(row["preview_score"] for row in rows)
    resumed = best_of_n(pipe, PROMPTS[:1], "brightness", n=6, prune=rule, out_dir=tmp_path, progress=False, **generation)
    assert resumed.generated == 0 and [c.pruned_at_step for c in resumed.candidates] == [c.pruned_at_step for c in pruned.candidates]


def test_early_pruning_needs_single_candidate_calls_and_a_step_callback(pipe):
    from integrations.diffusers.pruning import EarlyPruning

    with pytest.raises(ValueError, match="batch_size=1"):
        best_of_n(pipe, PROMPTS, "brightness", n=2, batch_size=2, prune=EarlyPruning(step=1), progress=False, **GENERATION)
    with pytest.raises(ValueError, match="below num_inference_steps"):
        best_of_n(pipe, PROMPTS, "brightness", n=2, prune=EarlyPruning(step=2), progress=False, **GENERATION)
    legacy = build_tiny_pipeline("text-to-video-sd")
    with pytest.raises(ValueError, match="callback_on_step_end"):
        best_of_n(legacy, PROMPTS, "brightness", n=2, prune=EarlyPruning(step=1), progress=False,
                  **tiny_generation_kwargs("text-to-video-sd"), num_inference_steps=3)


def test_preview_before_the_last_flow_step_is_the_final_video(pipe):
    """Euler's last flow-matching step lands on the predicted clean latents, so a preview taken
    there (all frames) must score exactly like the finished video."""
    from integrations.diffusers.pruning import EarlyPruning

    frames = tiny_generation_kwargs(FAMILY)["num_frames"]
    rule = EarlyPruning(step=3, keep=4, frames=frames)
    result = best_of_n(pipe, PROMPTS[:1], "brightness", n=3, prune=rule, progress=False,
                       **dict(GENERATION, num_inference_steps=4))
    assert result.pruning.pruned == 0
    for candidate in result.candidates:
        assert candidate.preview_score == pytest.approx(candidate.score, abs=1e-5)
