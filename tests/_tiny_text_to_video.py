"""A tiny random ModelScope-style TextToVideoSDPipeline built offline (UNet3D + AutoencoderKL + CLIP)."""
from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer


def _tokenizer() -> CLIPTokenizer:
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "th": 2, "th</w>": 3}
    for index, letter in enumerate("abcdefghijklmnopqrstuvwxyz"):
        vocab[letter] = 4 + index
        vocab[letter + "</w>"] = 30 + index
    return CLIPTokenizer(vocab=vocab, merges=[("t", "h")], model_max_length=16)


def build_tiny_text_to_video(seed: int = 0) -> TextToVideoSDPipeline:
    torch.manual_seed(seed)
    unet = UNet3DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=[8], in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D"], latent_channels=4, norm_num_groups=4, sample_size=16,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=16, intermediate_size=32,
        num_attention_heads=2, num_hidden_layers=2, vocab_size=64, max_position_embeddings=16,
    ))
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )
    pipe = TextToVideoSDPipeline(vae=vae, text_encoder=text_encoder, tokenizer=_tokenizer(), unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe
