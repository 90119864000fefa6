"""Tiny random text-to-video pipelines built offline from configs, with in-memory tokenizers.

They exercise the real diffusers code paths (tokenise, encode, denoise, decode) in well under a
second on a CPU, which makes them the test bed for adapters, best-of-N and fine-tuning, and the
generator behind ``examples/*.py --tiny``. Their videos are noise-like: only the plumbing is real.
Each must still respond like the others (``tests/test_tiny_pipelines.py``): its videos change with
the seed and a reward's gradient reaches its LoRA, so sizes differ from the releases where a random
model at 16x16 pixels would otherwise ignore its latents (the comments in each builder say where).

    >>> pipe = build_tiny_pipeline("wan", seed=0)
    >>> out = pipe("a red fox", **tiny_generation_kwargs("wan"), num_inference_steps=2, output_type="pt")
"""
from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any

import torch

#: Lower-case letters and digits: every prompt character the tiny tokenizers know.
_CHARACTERS = string.ascii_lowercase + string.digits


def clip_tokenizer(model_max_length: int = 77):
    """A character-level ``CLIPTokenizer`` built from an in-memory vocabulary (no merges, no files)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for char in _CHARACTERS:
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def t5_tokenizer():
    """A character-level SentencePiece ``T5Tokenizer`` built from an in-memory piece list."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(char, -2.0) for char in _CHARACTERS] + [("\u2581" + char, -3.0) for char in _CHARACTERS]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def llama_tokenizer():
    """A character-level Llama BPE tokenizer built from an in-memory vocabulary (no merges, no files)."""
    from transformers import LlamaTokenizer

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "\u2581": 3}
    for char in _CHARACTERS:
        vocab[char] = len(vocab)
        vocab["\u2581" + char] = len(vocab)
    tokenizer = LlamaTokenizer(vocab=vocab, merges=[])
    tokenizer.pad_token = "<unk>"
    return tokenizer


def _t5_encoder(tokenizer, d_model: int):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=1, num_heads=2,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    return T5EncoderModel(config).eval()


def _clip_text_encoder(tokenizer, hidden_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_attention_heads=2, num_hidden_layers=1, max_position_embeddings=77,
        bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=hidden_size,
    )
    return CLIPTextModel(config).eval()


def _ddim_for_unet_video():
    """DDIM as the UNet video pipelines ship it, ending at t > 0 (``steps_offset=1``).

    A schedule that ends at t = 0 makes DDPO's DDIM log-probabilities NaN, so it is set explicitly.
    """
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
    )


def _text_to_video_sd():
    from diffusers import AutoencoderKL, TextToVideoSDPipeline, UNet3DConditionModel

    tokenizer = clip_tokenizer()
    unet = UNet3DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        sample_size=32,
    )
    return TextToVideoSDPipeline(
        vae=vae, text_encoder=_clip_text_encoder(tokenizer, 16), tokenizer=tokenizer, unet=unet,
        scheduler=_ddim_for_unet_video(),
    )


def _animatediff():
    from diffusers import AnimateDiffPipeline, AutoencoderKL, MotionAdapter, UNet2DConditionModel

    tokenizer = clip_tokenizer()
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4,
    )
    motion_adapter = MotionAdapter(
        block_out_channels=(8, 16), motion_layers_per_block=1, motion_norm_num_groups=4,
        motion_num_attention_heads=2, motion_max_seq_length=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        sample_size=32,
    )
    return AnimateDiffPipeline(
        vae=vae, text_encoder=_clip_text_encoder(tokenizer, 16), tokenizer=tokenizer, unet=unet,
        motion_adapter=motion_adapter, scheduler=_ddim_for_unet_video(), feature_extractor=None, image_encoder=None,
    )


def _wan():
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

    tokenizer = t5_tokenizer()
    # base_dim 16, not 3: each up-sampling stage halves the channels, and Wan's RMS norm over a single
    # channel is sign(x), which made the decoded video nearly independent of the latents. Two stages
    # (4x in space and time) give a 16x16 video 4x4 latents instead of 2x2.
    vae = AutoencoderKLWan(
        base_dim=16, z_dim=16, dim_mult=[1, 1, 1], num_res_blocks=1, temperal_downsample=[True, True],
        scale_factor_spatial=4, scale_factor_temporal=4,
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=16, out_channels=16,
        text_dim=16, freq_dim=32, ffn_dim=32, num_layers=1, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    return WanPipeline(
        tokenizer=tokenizer, text_encoder=_t5_encoder(tokenizer, 16), vae=vae, transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )


def _cogvideox():
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel

    tokenizer = t5_tokenizer()
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4, time_embed_dim=2,
        text_embed_dim=16, num_layers=1, sample_width=2, sample_height=2, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=16,
    )
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1,
        norm_num_groups=2, temporal_compression_ratio=4,
        down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
    )
    scheduler = CogVideoXDDIMScheduler(  # the CogVideoX-2b release settings
        clip_sample=False, prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing",
    )
    return CogVideoXPipeline(
        tokenizer=tokenizer, text_encoder=_t5_encoder(tokenizer, 16), vae=vae, transformer=transformer, scheduler=scheduler,
    )


def _ltx():
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel

    tokenizer = t5_tokenizer()
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=2, attention_head_dim=8,
        cross_attention_dim=16, num_layers=1, caption_channels=16,
    )
    vae = AutoencoderKLLTXVideo(
        latent_channels=8, block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
        spatio_temporal_scaling=(True, True, False, False), decoder_spatio_temporal_scaling=(True, True, False, False),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1), patch_size=1, patch_size_t=1, encoder_causal=True, decoder_causal=False,
    )
    vae.use_framewise_encoding = False
    vae.use_framewise_decoding = False
    return LTXPipeline(
        tokenizer=tokenizer, text_encoder=_t5_encoder(tokenizer, 16), vae=vae, transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def _mochi():
    from diffusers import AutoencoderKLMochi, FlowMatchEulerDiscreteScheduler, MochiPipeline, MochiTransformer3DModel

    tokenizer = t5_tokenizer()
    # patch 1 (the release uses 2): a 16x16 video has 2x2 latents, and one token per frame leaves LoRA on
    # attention almost nothing to act on
    transformer = MochiTransformer3DModel(
        patch_size=1, num_attention_heads=2, attention_head_dim=8, num_layers=1, pooled_projection_dim=16,
        in_channels=12, qk_norm="rms_norm", text_embed_dim=16, time_embed_dim=4, activation_fn="swiglu",
        max_sequence_length=16,
    )
    # scaling_factor 0.1: the random decoder's per-frame group norms over 2x2 latents barely respond to
    # unit-variance latents (the release's factor is 1.0 for a trained decoder)
    vae = AutoencoderKLMochi(
        latent_channels=12, out_channels=3, encoder_block_out_channels=(32, 32, 32, 32),
        decoder_block_out_channels=(32, 32, 32, 32), layers_per_block=(1, 1, 1, 1, 1), scaling_factor=0.1,
    )
    return MochiPipeline(  # the release's scheduler counts sigmas from clean to noise (invert_sigmas)
        tokenizer=tokenizer, text_encoder=_t5_encoder(tokenizer, 16), vae=vae, transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(invert_sigmas=True),
    )


def _hunyuan_video():
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import LlamaConfig, LlamaModel

    tokenizer = llama_tokenizer()
    text_encoder = LlamaModel(
        LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_attention_heads=2,
            num_key_value_heads=2, num_hidden_layers=2, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        )
    ).eval()
    tokenizer_2 = clip_tokenizer()
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10, num_layers=1,
        num_single_layers=1, num_refiner_layers=1, patch_size=1, patch_size_t=1, guidance_embeds=True,
        text_embed_dim=16, pooled_projection_dim=8, rope_axes_dim=(2, 4, 4),
    )
    # spatial compression 4 (the release: 8), so a 16x16 video has 4x4 latents, not 2x2
    vae = AutoencoderKLHunyuanVideo(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
        norm_num_groups=4, scaling_factor=0.476986, spatial_compression_ratio=4, temporal_compression_ratio=4,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4, up_block_types=("HunyuanVideoUpBlock3D",) * 4,
    )
    return HunyuanVideoPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, tokenizer_2=tokenizer_2,
        text_encoder_2=_clip_text_encoder(tokenizer_2, 8), vae=vae, transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
    )


_BUILDERS: dict[str, Callable[[], Any]] = {
    "text-to-video-sd": _text_to_video_sd,
    "animatediff": _animatediff,
    "wan": _wan,
    "cogvideox": _cogvideox,
    "ltx": _ltx,
    "mochi": _mochi,
    "hunyuan-video": _hunyuan_video,
}

#: Generation sizes each tiny pipeline is built for (frames obey the family's temporal compression).
_GENERATION_KWARGS: dict[str, dict[str, Any]] = {
    "text-to-video-sd": {"num_frames": 4, "height": 16, "width": 16},
    "animatediff": {"num_frames": 4, "height": 16, "width": 16},
    "wan": {"num_frames": 9, "height": 16, "width": 16, "max_sequence_length": 16},
    "cogvideox": {"num_frames": 9, "height": 16, "width": 16, "max_sequence_length": 16},
    "ltx": {"num_frames": 9, "height": 32, "width": 32, "max_sequence_length": 16},
    "mochi": {"num_frames": 13, "height": 16, "width": 16, "max_sequence_length": 16},
    "hunyuan-video": {
        "num_frames": 9, "height": 16, "width": 16, "max_sequence_length": 16,
        "prompt_template": {"template": "{}", "crop_start": 0},
    },
}

TINY_FAMILIES: tuple[str, ...] = tuple(_BUILDERS)

#: The reward the offline ``--tiny`` modes score with: AIGC-VQA at tiny sizes, random weights.
TINY_REWARD = "aigc-vqa-tiny"


def build_tiny_pipeline(family: str, seed: int = 0, device: torch.device | str = "cpu"):
    """A diffusers pipeline of ``family`` with tiny random weights (fixed by ``seed``), in eval mode."""
    if family not in _BUILDERS:
        raise ValueError(f"no tiny pipeline for family {family!r}; choose one of {list(TINY_FAMILIES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipe = _BUILDERS[family]()
    pipe.set_progress_bar_config(disable=True)
    return pipe if torch.device(device).type == "cpu" else pipe.to(device)


def tiny_generation_kwargs(family: str) -> dict[str, Any]:
    """The ``num_frames`` / ``height`` / ``width`` (and text length) a tiny ``family`` pipeline runs at."""
    if family not in _GENERATION_KWARGS:
        raise ValueError(f"no tiny pipeline for family {family!r}; choose one of {list(TINY_FAMILIES)}")
    return dict(_GENERATION_KWARGS[family])
