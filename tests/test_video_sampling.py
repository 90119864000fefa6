"""Frame samplers: DOVER's segment sampler (golden parity, determinism) and the uniform sampler."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reward.video.sampling import dover_frame_indices, dover_segment_starts, uniform_frame_indices


@pytest.fixture(scope="module")
def sampler_cases(golden_dir):
    return torch.load(golden_dir / "dover_small_golden.pt", weights_only=True)["sampler_cases"]


def _options(case):
    return {key: case[key] for key in ("fsize_t", "fragments_t", "frame_interval", "num_clips")}


@pytest.mark.golden
def test_all_golden_sampler_cases_replay_exactly(sampler_cases):
    assert len(sampler_cases) == 20
    for case in sampler_cases:
        starts = dover_segment_starts(case["num_frames"], rng=case["np_seed"], **_options(case))
        indices = dover_frame_indices(case["num_frames"], rng=case["np_seed"], **_options(case))
        assert torch.equal(starts, case["rnd_t"]), case["name"]
        assert torch.equal(indices, case["indices"]), case["name"]
        # the same draws through a caller-owned legacy generator
        rng = np.random.RandomState(case["np_seed"])
        assert torch.equal(dover_frame_indices(case["num_frames"], rng=rng, **_options(case)), case["indices"])


@pytest.mark.golden
def test_deterministic_default_is_the_clip_centred_in_its_segment(sampler_cases):
    for case in sampler_cases:
        options = _options(case)
        starts = dover_segment_starts(case["num_frames"], **options)
        room = case["num_frames"] // options["fragments_t"] - options["fsize_t"] * options["frame_interval"]
        assert torch.equal(starts, torch.full_like(starts, room // 2 if room > 0 else 0)), case["name"]
        assert torch.equal(dover_frame_indices(case["num_frames"], **options), dover_frame_indices(case["num_frames"], **options))
        if room <= 0:  # nothing random in the reference either: identical indices
            assert torch.equal(dover_frame_indices(case["num_frames"], **options), case["indices"]), case["name"]


def test_sampler_semantics_wraparound_layout_and_numpy_generator():
    # 10 frames, 2 segments of 5, clips of 4 frames every 2: span 8 > 5, so start 0 and wrap-around
    indices = dover_frame_indices(10, fsize_t=4, fragments_t=2, frame_interval=2, num_clips=2)
    assert indices.tolist() == [0, 2, 4, 6, 5, 7, 9, 1] * 2  # clip-major, then segment, then frame
    # a modern numpy Generator draws valid starts inside [0, length - span)
    starts = dover_segment_starts(240, fsize_t=4, fragments_t=3, frame_interval=2, num_clips=5,
                                  rng=np.random.default_rng(0))
    assert starts.shape == (5, 3) and int(starts.min()) >= 0 and int(starts.max()) < 80 - 8
    with pytest.raises(TypeError, match="rng must be"):
        dover_frame_indices(10, fsize_t=1, fragments_t=1, rng="seed")
    with pytest.raises(ValueError, match="starts must have shape"):
        dover_frame_indices(10, fsize_t=1, fragments_t=2, starts=torch.zeros(1, 3, dtype=torch.long))


def test_uniform_indices_spread_and_repeat():
    assert uniform_frame_indices(10, 5).tolist() == [1, 3, 5, 7, 9]
    assert uniform_frame_indices(2, 4).tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError):
        uniform_frame_indices(0, 4)
