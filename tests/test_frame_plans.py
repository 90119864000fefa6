"""Frame plans: every built-in reward scores a sparse read exactly as the full read (views bit for bit)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from video_files import write_clip, write_rotated

import reward
from reward.errors import RewardInputError
from reward.frame_plan import FramePlan, SparseVideo
from reward.mixture import resolve_reward
from reward.pcqa import PCQAEnsemble
from reward.video import aesthetic_view, decode, technical_view
from reward.video.io import read_video

PROMPT = "a red square drifting over colour bands"
#: Every built-in reward at its tiny size, a mixture, and ImageReward with a frame budget (its preset looks at every frame).
REWARDS = ["dover-tiny", "aigc-vqa-tiny", "pcqa-tiny", "imagereward-tiny", "colorfulness", "brightness",
           "dover-tiny:1,aigc-vqa-tiny:0.5"]
#: dover-tiny's 224-pixel views cost seconds per forward on two CPU cores.
SLOW = {"dover-tiny", "dover-tiny:1,aigc-vqa-tiny:0.5"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """40-frame clips: H.264 4:4:4 at an odd size with B-frames, a keyframe every 8 frames, a variable frame rate
    and a rotation tag; and VP9 4:2:0 at an odd size."""
    folder = tmp_path_factory.mktemp("plans")
    return {
        "awkward.mp4": write_rotated(folder / "awkward.mp4", frames=40, height=37, width=51, pix_fmt="yuv444p",
                                     variable_rate=True),
        "odd.webm": write_clip(folder / "odd.webm", frames=40, height=37, width=51, codec="libvpx-vp9",
                               options={"deadline": "realtime", "cpu-used": "8"}),
    }


@pytest.fixture(scope="module")
def models() -> dict[str, reward.VideoReward]:
    built = {name: resolve_reward(name, pretrained=False) for name in REWARDS}
    built["imagereward-tiny/8 frames"] = reward.load("imagereward-tiny", pretrained=False, num_frames=8)
    members = [reward.load("pcqa-tiny", pretrained=False, num_frames=n) for n in (3, 5)]
    members[1].prompt_encoder = members[0].prompt_encoder
    built["pcqa ensemble"] = PCQAEnsemble.from_members(members, flip_tta=True)
    return built


@pytest.mark.filterwarnings("ignore:this PCQA ensemble has no prediction statistics")
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=[pytest.mark.slow] if name in SLOW else [])
    for name in [*REWARDS, "imagereward-tiny/8 frames", "pcqa ensemble"]
])
@pytest.mark.parametrize("kind", ["awkward.mp4", "odd.webm"])
def test_a_sparse_read_scores_like_the_full_read(files, models, name, kind, monkeypatch):
    monkeypatch.setattr(decode, "SEEK_MIN_SKIP", 4)  # seek wherever a keyframe lies 4 frames past the last one kept
    model = models[name]
    full = model.score(read_video(files[kind])[None], PROMPT)
    clip = read_video(files[kind], frames=model)
    assert clip.num_frames == 40
    sparse = model.score(clip, PROMPT)
    assert set(sparse.components) == set(full.components)
    torch.testing.assert_close(sparse.score, full.score, rtol=0, atol=1e-6)
    for key, value in full.components.items():
        torch.testing.assert_close(sparse.components[key], value, rtol=0, atol=1e-6)


def test_plans_name_the_frames_the_views_use(models):
    """dover-tiny: a centred 16-frame technical clip and one aesthetic frame in each of 16 segments; aigc-vqa-tiny adds its 4
    alignment frames; a mixture joins its members; whole-video rewards say they look at every frame."""
    video = torch.rand(1, 70, 3, 40, 48)
    for name in ("dover-tiny", "aigc-vqa-tiny"):
        extras = models[name].score(video, PROMPT, return_maps=True).extras
        used = [extras["technical_frame_indices"], extras["aesthetic_frame_indices"], extras.get("alignment_frame_indices", [])]
        assert models[name].frame_plan(70) == FramePlan.of(70, *used)
    assert models["dover-tiny"].frame_plan(70).indices.tolist() == sorted({*range(27, 43), *range(1, 62, 4)})
    mixture = models["dover-tiny:1,aigc-vqa-tiny:0.5"].frame_plan(70)
    assert mixture == models["dover-tiny"].frame_plan(70).union(models["aigc-vqa-tiny"].frame_plan(70))
    assert models["pcqa ensemble"].frame_plan(70) == FramePlan.of(70, [11, 35, 58, 7, 21, 35, 49, 63])
    for name in ("colorfulness", "imagereward-tiny"):
        plan = models[name].frame_plan(70)
        assert plan.every_frame and plan.covers_every_frame
    assert not models["imagereward-tiny/8 frames"].frame_plan(70).every_frame
    assert models["pcqa-tiny"].frame_plan(3).covers_every_frame  # short videos: every frame, as the model does


def test_views_of_a_compact_clip_are_the_full_views_bit_for_bit():
    """Fragments straight from a uint8 clip (no upsampling: 4x4 fragments of 8 px, and DOVER's 7x7 of 32 on an
    upsampled small video) and chunked aesthetic resizing equal the views of the full float video."""
    levels = torch.randint(0, 256, (2, 50, 3, 36, 44), dtype=torch.uint8)
    video = levels.float() / 255
    for fragments, size in ((4, 8), (7, 32)):
        options = dict(clip_len=8, num_clips=2, frame_interval=2, aligned=4, fragments=fragments, fragment_size=size)
        plan = FramePlan.of(50, technical_view(video, **options).frame_indices, [49])
        full = technical_view(video, **options)
        sparse = technical_view(levels[:, plan.indices], **options, frame_plan=plan)
        assert torch.equal(sparse.pixels, full.pixels) and torch.equal(sparse.frame_indices, full.frame_indices)
    options = dict(clip_len=8, t_frag=8, frame_interval=2, size=32)
    plan = FramePlan.of(50, aesthetic_view(video, **options).frame_indices)
    full = aesthetic_view(video, **options)
    sparse = aesthetic_view(levels[:, plan.indices], **options, frame_plan=plan)
    assert torch.equal(sparse.pixels, full.pixels) and torch.equal(sparse.frame_indices, full.frame_indices)


def test_gradients_reach_exactly_the_planned_frames_of_a_float_clip(models):
    model = models["aigc-vqa-tiny"]
    video = torch.rand(1, 30, 3, 40, 48, dtype=torch.float64, requires_grad=True)
    model(video, PROMPT).score.sum().backward()
    plan = model.frame_plan(30)
    clip = video.detach()[:, plan.indices].clone().requires_grad_(True)
    model(clip, PROMPT, frame_plan=plan).score.sum().backward()
    torch.testing.assert_close(clip.grad, video.grad[:, plan.indices], rtol=1e-9, atol=1e-12)
    outside = torch.ones(30, dtype=torch.bool)
    outside[plan.indices] = False
    assert video.grad[:, outside].abs().max() == 0


def test_random_views_work_on_full_videos_and_a_clip_refuses_them(files, models):
    model = models["aigc-vqa-tiny"]
    video = read_video(files["awkward.mp4"])[None]
    drawn = model.score(video, PROMPT, frame_rng=3).score
    assert torch.equal(drawn, model.score(video, PROMPT, frame_rng=3).score)
    assert not torch.equal(drawn, model.score(video, PROMPT).score)
    clip = read_video(files["awkward.mp4"], frames=model)
    with pytest.raises(RewardInputError, match="not in the clip.*random views .frame_rng.*read_video\\(path\\)"):
        model.score(clip, PROMPT, frame_rng=3)


def test_a_clip_read_for_another_reward_is_refused_with_the_fix(files, models):
    clip = read_video(files["awkward.mp4"], frames=models["aigc-vqa-tiny"])
    with pytest.raises(RewardInputError, match="lacks frames the 'dover' reward looks at.*frames=this reward"):
        models["dover-tiny"].score(clip)
    with pytest.raises(RewardInputError, match="holds 3 frames but its plan names"):
        models["dover-tiny"].score(clip.frames[None, :3], frame_plan=clip.plan)
    with pytest.raises(RewardInputError, match="carries its frame plan"):
        models["dover-tiny"].score(clip, frame_plan=clip.plan)


def test_a_clip_covering_every_frame_is_an_ordinary_video(models):
    """A user reward without a plan of its own (every frame) scores a whole-video SparseVideo as the full tensor."""
    levels = torch.randint(0, 256, (6, 3, 20, 24), dtype=torch.uint8)
    clip = SparseVideo(levels, FramePlan.every_frame_of(6))
    model = models["colorfulness"]
    assert torch.equal(model.score(clip).score, model.score((levels.float() / 255)[None]).score)
