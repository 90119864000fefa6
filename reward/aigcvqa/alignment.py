"""AIGC-VQA's alignment branch: ImageReward's BLIP with an ST-Adapter over time, scoring video-prompt agreement.

Per sampled frame the ViT gives image tokens; the ST-Adapter mixes each token with the same token
in neighbouring frames; the tokens are then averaged over time (as related public video-text
models do: AIGC-VQA does not publish this step) and the text encoder cross-attends to that one
token set. Its [CLS] feature goes through ImageReward's head. With the adapter at its identity
initialisation and one frame, the branch returns exactly ImageReward's score.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..frame_plan import FramePlan, source_length, take_frames
from ..precision import backbone_autocast, maybe_checkpoint
from ..blocks.blip import BLIP_TINY, BlipEncoders, BlipSpec
from ..imagereward.scorer import BlipScorer
from ..video.sampling import uniform_frame_indices
from ..blocks.st_adapter import STAdapter
from ..imagereward.tokenizer import HUB_TOKENIZER, MAX_LENGTH, TINY_VOCAB


@dataclass
class AlignmentConfig:
    """Sizes and view settings of the alignment branch (defaults: the AIGC-VQA paper on ImageReward)."""

    blip: BlipSpec = field(default_factory=BlipSpec)
    num_frames: int = 16
    adapter_channels: int = 384
    adapter_activation: str | None = None
    tokenizer: str = HUB_TOKENIZER
    max_length: int = MAX_LENGTH

    def __post_init__(self) -> None:
        self.blip = BlipSpec.coerce(self.blip)
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {self.num_frames}")


#: Tiny random branch for tests and the tiny AIGC-VQA preset (offline character vocabulary).
ALIGNMENT_TINY = AlignmentConfig(blip=BLIP_TINY, num_frames=4, adapter_channels=8, tokenizer=TINY_VOCAB)


class AlignmentBranch(BlipScorer):
    """Videos [B, T, 3, H, W] in [0, 1] + prompt tokens -> alignment score s_a [B] (ImageReward scale)."""

    def __init__(self, config: AlignmentConfig | Mapping[str, Any]):
        if isinstance(config, Mapping):
            config = AlignmentConfig(**config)
        super().__init__(config.blip, config.tokenizer, config.max_length)
        self.config = config
        self.adapter = STAdapter(config.blip.vision_width, config.adapter_channels, activation=config.adapter_activation)
        self.gradient_checkpointing = False

    def frame_indices(self, num_frames: int) -> torch.Tensor:
        """The ``num_frames`` evenly spread source frames the branch looks at (repeated when the video is shorter)."""
        return uniform_frame_indices(num_frames, self.config.num_frames)

    def video_tokens(
        self, videos: torch.Tensor, compute_dtype: torch.dtype | None = None, frame_plan: FramePlan | None = None
    ) -> torch.Tensor:
        """Videos [B, T, 3, H, W] -> the image tokens the text encoder attends to [B, 1 + patches, vision_width].

        ``num_frames`` evenly spread frames (repeated when the video is shorter) go through the
        ViT and the ST-Adapter, then their tokens are averaged over time. With ``frame_plan`` the videos
        are its compact clip.
        """
        batch = videos.shape[0]
        frames = take_frames(videos, self.frame_indices(source_length(videos, frame_plan)), frame_plan)
        count = frames.shape[1]
        tokens = self.encode_frames(frames.flatten(0, 1), compute_dtype)
        with backbone_autocast(videos.device, compute_dtype):
            tokens = maybe_checkpoint(self.adapter, tokens, count, enabled=self.gradient_checkpointing)
        return tokens.unflatten(0, (batch, count)).mean(dim=1)

    def forward(
        self,
        videos: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        compute_dtype: torch.dtype | None = None,
        frame_plan: FramePlan | None = None,
    ) -> torch.Tensor:
        """s_a [B] in fp32 for videos [B, T, 3, H, W] in [0, 1] and their prompt tokens (see ``tokenize``)."""
        tokens = self.video_tokens(videos, compute_dtype, frame_plan)
        return self.score_tokens(input_ids, attention_mask, tokens, compute_dtype)


def freeze_by_fix_rate(module: nn.Module, rate: float) -> tuple[int, int]:
    """ImageReward's partial freezing of every BLIP in ``module``; returns (trainable, total) parameter counts.

    ImageReward freezes parameters in definition order up to and including the first parameter
    of text layer ``int(12 * rate)`` and of vision block ``int(24 * rate)``; here the actual
    depths replace 12 and 24 (the same for the official sizes). ``rate = 0`` freezes nothing,
    ``rate = 1`` the whole of both encoders. Other parameters (head, adapter) stay trainable.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"fix rate must be in [0, 1], got {rate}")
    encoders = [m for m in module.modules() if isinstance(m, BlipEncoders)]
    if not encoders:
        raise ValueError(f"{type(module).__name__} holds no BLIP encoders to freeze")
    for blip in encoders:
        blip.requires_grad_(True)
        if rate > 0:
            _freeze_leading(blip.vision_model.embeddings, blip.vision_layers, blip.vision_model.post_layernorm, rate,
                            first_of_layer=lambda layer: layer.layer_norm1.weight)
            _freeze_leading(blip.text_encoder.embeddings, blip.text_layers, None, rate,
                            first_of_layer=lambda layer: layer.attention.self.query.weight)
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in module.parameters())


def _freeze_leading(embeddings: nn.Module, layers: nn.ModuleList, final: nn.Module | None, rate: float, first_of_layer) -> None:
    cut = int(len(layers) * rate)
    embeddings.requires_grad_(False)
    for layer in layers[:cut]:
        layer.requires_grad_(False)
    if cut < len(layers):
        first_of_layer(layers[cut]).requires_grad_(False)
    elif final is not None:
        final.requires_grad_(False)

