"""Family adapters on tiny offline pipelines: output normalisation, differentiable decode equal to the
pipeline's own output, the custom denoising loop equal to the pipeline's, frame subsets, gradients."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

import reward
from integrations.diffusers import (
    TINY_FAMILIES,
    FrameSelection,
    UnsupportedPipelineError,
    VideoPipelineAdapter,
    adapter_for,
    build_tiny_pipeline,
    supported_pipelines,
    tiny_generation_kwargs,
    to_videos,
)
from integrations.diffusers.adapters import CAUSAL, FULL, PER_FRAME
from tests.diffusers_support import one_thread  # noqa: F401  (autouse fixture)

PROMPTS = ["a red fox in snow", "a cat on a boat"]
SEEDS = (11, 12)
STEPS = 2
GUIDANCE = 4.0
SIZE_KEYS = ("num_frames", "height", "width")


@dataclass
class FamilyRun:
    """One tiny pipeline, its adapter, and the pipeline's own outputs for fixed seeds."""

    family: str
    pipe: object
    adapter: object
    size: dict
    call_kwargs: dict
    pt: torch.Tensor
    latents: torch.Tensor  # canonical

    def generators(self) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(seed) for seed in SEEDS]

    def run(self, output_type: str):
        return self.pipe(PROMPTS, generator=self.generators(), output_type=output_type, **self.call_kwargs)

    def start(self):
        """Conditioning, timesteps and initial latents of the adapter's own loop, as the pipeline would."""
        extras = {k: v for k, v in self.call_kwargs.items() if k == "prompt_template"}
        conditioning = self.adapter.encode_prompt(
            PROMPTS, max_sequence_length=self.call_kwargs.get("max_sequence_length"), **extras
        )
        timesteps = self.adapter.set_timesteps(STEPS, **self.size)
        latents = self.adapter.prepare_latents(len(PROMPTS), **self.size, generator=self.generators())
        return conditioning, timesteps, latents


@pytest.fixture(scope="module", params=TINY_FAMILIES)
def run(request) -> FamilyRun:
    family = request.param
    pipe = build_tiny_pipeline(family, seed=0)
    kwargs = tiny_generation_kwargs(family)
    size = {key: kwargs[key] for key in SIZE_KEYS}
    call_kwargs = dict(kwargs, num_inference_steps=STEPS, guidance_scale=GUIDANCE)
    adapter = adapter_for(pipe)
    partial = FamilyRun(family, pipe, adapter, size, call_kwargs, torch.empty(0), torch.empty(0))
    partial.pt = partial.run("pt").frames
    partial.latents = adapter.from_pipeline_latents(partial.run("latent").frames, **size)
    return partial


def test_adapter_for_matches_family(run):
    assert adapter_for(run.pipe).family == run.family
    assert type(run.pipe).__name__ in run.adapter.pipeline_class_names


def test_output_types_normalise_to_the_same_videos(run):
    videos = run.adapter.videos_from_output(run.pt)
    batch, frames, channels, height, width = videos.shape
    assert (batch, channels, height, width) == (len(PROMPTS), 3, run.size["height"], run.size["width"])
    assert frames == run.size["num_frames"]
    assert videos.dtype == torch.float32 and 0 <= float(videos.min()) and float(videos.max()) <= 1
    from_np = run.adapter.videos_from_output(run.run("np"))
    assert torch.allclose(from_np, videos, atol=1e-6)
    from_pil = run.adapter.videos_from_output(run.run("pil").frames)
    assert torch.allclose(from_pil, videos, atol=1 / 255 + 1e-6)


def test_decode_equals_pipeline_output_and_passes_gradients(run):
    latents = run.latents.clone().requires_grad_(True)
    videos = run.adapter.decode(latents)
    assert videos.shape == run.pt.shape
    assert torch.allclose(videos, run.pt, atol=1e-4)
    videos.mean().backward()
    assert torch.isfinite(latents.grad).all() and float(latents.grad.abs().sum()) > 0


def test_custom_loop_reproduces_the_pipeline_latents(run):
    adapter = run.adapter
    conditioning, timesteps, latents = run.start()
    assert tuple(latents.shape) == adapter.latent_shape(len(PROMPTS), **run.size)
    with torch.no_grad():
        for t in timesteps:
            prediction = adapter.denoiser_forward(latents, t, conditioning, GUIDANCE)
            latents = adapter.scheduler_step(prediction, t, latents)
    assert torch.allclose(latents, run.latents, atol=1e-5)
    round_trip = adapter.from_pipeline_latents(adapter.to_pipeline_latents(latents), **run.size)
    assert torch.equal(round_trip, latents)


@pytest.mark.parametrize(
    "selection",
    [FrameSelection.first(2), FrameSelection.stride(2, offset=1), FrameSelection.explicit([-1, 0]),
     FrameSelection.uniform(3), FrameSelection.random(2, seed=5)],
    ids=["first", "stride", "explicit", "uniform", "random"],
)
def test_frame_subset_equals_the_same_frames_of_the_full_decode(run, selection):
    with torch.no_grad():
        part = run.adapter.decode(run.latents, selection)
    indices = selection.resolve(run.pt.shape[1])
    assert torch.allclose(part, run.pt[:, indices], atol=1e-4)


def test_frame_subset_decodes_only_the_latent_frames_it_needs(run):
    seen: list[int] = []
    vae = run.adapter.vae
    original = vae.decode

    def recording_decode(latents, *args, **kwargs):
        seen.append(latents.shape[2] if latents.ndim == 5 else latents.shape[0])
        return original(latents, *args, **kwargs)

    vae.decode = recording_decode
    try:
        with torch.no_grad():
            run.adapter.decode(run.latents, FrameSelection.first(1))
    finally:
        del vae.decode
    # per-frame VAEs see one 2-D latent per video; causal ones a 1-frame prefix; others every latent frame
    expected = {PER_FRAME: [len(PROMPTS)], CAUSAL: [1], FULL: [run.latents.shape[2]]}
    assert seen == expected[run.adapter.frame_decoding]


def test_reward_gradient_reaches_the_denoiser(run):
    """One differentiable step + decode + reward: what reward backprop fine-tuning runs."""
    adapter = run.adapter
    conditioning, timesteps, latents = run.start()
    adapter.denoiser.zero_grad()
    prediction = adapter.denoiser_forward(latents, timesteps[0], conditioning, GUIDANCE)
    latents = adapter.scheduler_step(prediction, timesteps[0], latents)
    videos = adapter.decode(latents, FrameSelection.uniform(2))
    assert videos.shape[1] == 2
    reward.load("brightness")(videos).score.sum().backward()
    grads = [p.grad for p in adapter.denoiser.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    adapter.denoiser.zero_grad()


def test_per_sample_timesteps_equal_separate_calls(run):
    """DDPO re-evaluates stored trajectories with one timestep per sample."""
    adapter = run.adapter
    conditioning, timesteps, latents = run.start()
    with torch.no_grad():
        together = adapter.denoiser_forward(latents, timesteps[:2], conditioning, GUIDANCE)
        apart = [
            adapter.denoiser_forward(latents[i : i + 1], timesteps[i], conditioning.select(slice(i, i + 1)), GUIDANCE)
            for i in range(2)
        ]
    assert torch.allclose(together, torch.cat(apart), atol=1e-5)


def test_unsupported_pipeline_names_the_supported_ones():
    class StableDiffusionPipeline:
        pass

    with pytest.raises(UnsupportedPipelineError, match="WanPipeline") as error:
        adapter_for(StableDiffusionPipeline())
    assert "StableDiffusionPipeline" in str(error.value)
    for name in ("TextToVideoSDPipeline", "AnimateDiffPipeline", "CogVideoXPipeline", "LTXPipeline"):
        assert name in supported_pipelines() and name in str(error.value)


def test_subclass_of_a_supported_pipeline_gets_its_adapter():
    pipe = build_tiny_pipeline("wan")
    pipe.__class__ = type("MyWanPipeline", (type(pipe),), {})
    assert adapter_for(pipe).family == "wan"


def test_an_adapter_without_its_family_hooks_fails_at_construction():
    class Incomplete(VideoPipelineAdapter):
        def prepare_latents(self, batch_size, *, num_frames, height, width, generator=None):
            return torch.zeros(batch_size)

    with pytest.raises(TypeError, match="denoiser_forward") as error:
        Incomplete(build_tiny_pipeline("wan"))
    assert "_vae_decode" in str(error.value) and "prepare_latents" not in str(error.value)


def test_mismatched_latents_and_prompts_are_refused():
    adapter = adapter_for(build_tiny_pipeline("wan"))
    size = {k: tiny_generation_kwargs("wan")[k] for k in SIZE_KEYS}
    conditioning = adapter.encode_prompt(["one prompt"], max_sequence_length=16)
    latents = adapter.prepare_latents(2, **size)
    with pytest.raises(ValueError, match="repeat"):
        adapter.denoiser_forward(latents, adapter.set_timesteps(2, **size)[0], conditioning, GUIDANCE)
    assert conditioning.repeat(2).batch_size == 2 and conditioning.repeat(2).negative.batch_size == 2


def test_to_videos_accepts_every_layout():
    pt = torch.rand(2, 3, 3, 4, 5)
    channels_last = pt.permute(0, 1, 3, 4, 2).numpy()
    uint8 = (channels_last * 255).round().astype(np.uint8)
    from PIL import Image

    pil = [[Image.fromarray(frame) for frame in video] for video in uint8]
    assert torch.equal(to_videos(pt), pt)
    assert torch.allclose(to_videos(channels_last), pt)
    assert torch.allclose(to_videos(uint8), pt, atol=0.5 / 255 + 1e-6)
    assert torch.allclose(to_videos(pil), pt, atol=0.5 / 255 + 1e-6)
    assert torch.allclose(to_videos(pil[0]), pt[:1], atol=0.5 / 255 + 1e-6)
    assert torch.equal(to_videos((pt,)), pt) and torch.equal(to_videos(pt[0]), pt[:1])
    assert torch.allclose(to_videos([video for video in channels_last]), pt)


@pytest.mark.parametrize(
    "bad, message",
    [(torch.rand(2, 3, 4, 5, 6, 7), "not a batch of videos"), (torch.rand(1, 2, 4, 5, 6), "RGB"), ([], "no videos"),
     (torch.randint(0, 9, (1, 2, 3, 4, 4)), "uint8")],
)
def test_to_videos_errors_say_what_was_expected(bad, message):
    with pytest.raises(ValueError, match=message):
        to_videos(bad)


def test_frame_selection_rules_and_errors():
    assert FrameSelection.stride(3, offset=1).resolve(8).tolist() == [1, 4, 7]
    assert FrameSelection.first(3).resolve(8).tolist() == [0, 1, 2]
    assert FrameSelection.explicit([-1, 2]).resolve(5).tolist() == [4, 2]
    drawn = FrameSelection.random(3).resolve(10, generator=torch.Generator().manual_seed(0))
    assert drawn.tolist() == sorted(set(drawn.tolist())) and len(drawn) == 3
    assert torch.equal(FrameSelection.random(3, seed=1).resolve(10), FrameSelection.random(3, seed=1).resolve(10))
    with pytest.raises(ValueError, match="at most 4"):
        FrameSelection.first(5).resolve(4)
    with pytest.raises(ValueError, match="outside"):
        FrameSelection.explicit([7]).resolve(4)
    with pytest.raises(ValueError, match="count >= 1"):
        FrameSelection.uniform(0)
    from integrations.diffusers.frames import as_frame_selection

    with pytest.raises(TypeError, match="FrameSelection"):
        as_frame_selection(3)


def _custom_loop(adapter, prompts, size, generators, steps=STEPS, guidance=GUIDANCE, **encode_kwargs):
    conditioning = adapter.encode_prompt(prompts, **encode_kwargs)
    latents = adapter.prepare_latents(len(prompts), **size, generator=generators)
    with torch.no_grad():
        for t in adapter.set_timesteps(steps, **size):
            latents = adapter.scheduler_step(adapter.denoiser_forward(latents, t, conditioning, guidance), t, latents)
    return latents


def test_wan_two_expert_loop_switches_experts_like_the_pipeline():
    from diffusers import WanPipeline

    base = build_tiny_pipeline("wan", seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        expert = type(base.transformer)(**base.transformer.config).eval()
    pipe = WanPipeline(
        tokenizer=base.tokenizer, text_encoder=base.text_encoder, vae=base.vae, scheduler=base.scheduler,
        transformer=base.transformer, transformer_2=expert, boundary_ratio=0.5,
    )
    pipe.set_progress_bar_config(disable=True)
    kwargs = tiny_generation_kwargs("wan")
    size = {k: kwargs[k] for k in SIZE_KEYS}
    steps = 4
    expected = pipe(PROMPTS, generator=[torch.Generator().manual_seed(s) for s in SEEDS], output_type="latent",
                    num_inference_steps=steps, guidance_scale=GUIDANCE, **kwargs).frames
    adapter = adapter_for(pipe)
    generators = [torch.Generator().manual_seed(s) for s in SEEDS]
    latents = _custom_loop(adapter, PROMPTS, size, generators, steps=steps, max_sequence_length=16)
    assert torch.allclose(latents, expected, atol=1e-5)
    single_expert = _custom_loop(adapter_for(base), PROMPTS, size, [torch.Generator().manual_seed(s) for s in SEEDS],
                                 steps=steps, max_sequence_length=16)
    assert not torch.allclose(single_expert, expected, atol=1e-3)


def test_ltx_decode_noise_matches_the_pipeline_for_timestep_conditioned_vaes():
    from diffusers import AutoencoderKLLTXVideo

    from integrations.diffusers.adapters import LTXAdapter

    pipe = build_tiny_pipeline("ltx")
    config = {key: value for key, value in pipe.vae.config.items() if not key.startswith("_")}
    pipe.vae = AutoencoderKLLTXVideo(**{**config, "timestep_conditioning": True})
    pipe.vae.use_framewise_decoding = False
    kwargs = tiny_generation_kwargs("ltx")
    size = {k: kwargs[k] for k in SIZE_KEYS}
    call = dict(kwargs, num_inference_steps=STEPS, guidance_scale=GUIDANCE)
    expected = pipe("a fox", generator=torch.Generator().manual_seed(3), output_type="pt",
                    decode_timestep=0.05, decode_noise_scale=0.5, **call).frames
    packed = pipe("a fox", generator=torch.Generator().manual_seed(3), output_type="latent", **call).frames
    adapter = LTXAdapter(pipe, decode_timestep=0.05, decode_noise_scale=0.5)
    latents = adapter.from_pipeline_latents(packed, **size)
    generator = torch.Generator().manual_seed(3)
    torch.randn(latents.shape, generator=generator)  # the pipeline drew its initial noise from it first
    with torch.no_grad():
        assert torch.allclose(adapter.decode(latents, generator=generator), expected, atol=1e-4)
        other_noise = adapter.decode(latents, generator=torch.Generator().manual_seed(4))
    assert float((other_noise - expected).abs().max()) > 1e-2


def test_cogvideox_15_padding_and_dpm_scheduler_match_the_pipeline():
    """CogVideoX 1.5 pads latent frames to its temporal patch; the 5B models use a stochastic DPM scheduler."""
    from diffusers import CogVideoXDPMScheduler, CogVideoXTransformer3DModel

    pipe = build_tiny_pipeline("cogvideox")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pipe.transformer = CogVideoXTransformer3DModel(
            num_attention_heads=1, attention_head_dim=16, in_channels=4, out_channels=4, time_embed_dim=2,
            text_embed_dim=16, num_layers=1, sample_width=2, sample_height=2, sample_frames=9, patch_size=2,
            patch_size_t=2, temporal_compression_ratio=4, max_text_seq_length=16,
            use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False,
        ).eval()
    pipe.scheduler = CogVideoXDPMScheduler.from_config(pipe.scheduler.config)
    kwargs = tiny_generation_kwargs("cogvideox")
    size = {k: kwargs[k] for k in SIZE_KEYS}
    call = dict(kwargs, num_inference_steps=3, guidance_scale=GUIDANCE)
    expected = pipe(PROMPTS, generator=[torch.Generator().manual_seed(s) for s in SEEDS], output_type="pt", **call).frames
    adapter = adapter_for(pipe)
    assert adapter.padding_latent_frames(size["num_frames"]) == 1
    generators = [torch.Generator().manual_seed(s) for s in SEEDS]
    conditioning = adapter.encode_prompt(PROMPTS, max_sequence_length=16)
    latents = adapter.prepare_latents(len(PROMPTS), **size, generator=generators)
    assert tuple(latents.shape) == adapter.latent_shape(len(PROMPTS), **size)
    with torch.no_grad():
        for t in adapter.set_timesteps(3, **size):
            prediction = adapter.denoiser_forward(latents, t, conditioning, GUIDANCE)
            latents = adapter.scheduler_step(prediction, t, latents, generator=generators)
        videos = adapter.decode(latents, num_frames=size["num_frames"])
    assert torch.allclose(videos, expected, atol=1e-4)


@pytest.mark.parametrize("family", ["animatediff", "cogvideox", "wan", "mochi"])
def test_predict_clean_inverts_the_forward_noising(family):
    """epsilon (AnimateDiff), v (CogVideoX) and flow (Wan; Mochi's inverted sigmas and x0 - noise
    prediction) predictions of the true noise give x0 back."""
    adapter = adapter_for(build_tiny_pipeline(family))
    size = {k: tiny_generation_kwargs(family)[k] for k in SIZE_KEYS}
    t = adapter.set_timesteps(4, **size)[1]
    clean, noise = torch.randn(adapter.latent_shape(1, **size)), torch.randn(adapter.latent_shape(1, **size))
    scheduler = adapter.scheduler
    if family == "wan":  # rectified flow: x_t = (1 - sigma) x0 + sigma noise, velocity noise - x0
        sigma = scheduler.sigmas[1]
        noisy, prediction = (1 - sigma) * clean + sigma * noise, noise - clean
    elif family == "mochi":  # the release counts sigma from clean (1) to noise (0); the model predicts x0 - noise
        sigma = scheduler.sigmas[1]
        noisy, prediction = sigma * clean + (1 - sigma) * noise, clean - noise
    else:
        noisy = scheduler.add_noise(clean, noise, t[None])
        prediction = scheduler.get_velocity(clean, noise, t[None]) if family == "cogvideox" else noise
    assert torch.allclose(adapter.predict_clean(prediction, t, noisy), clean, atol=1e-4)
