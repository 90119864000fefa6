"""The parts ImageReward and the alignment branch share: BLIP encoders, the reward head and the tokenizer."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..precision import backbone_autocast, full_precision
from ..video.sampling import uniform_frame_indices
from ..blocks.blip import BlipEncoders, BlipSpec
from .preprocess import imagereward_pixels
from .head import ImageRewardHead
from .tokenizer import ImageRewardTokenizer


def select_frames(videos: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` frames spread evenly over each video [B, T, 3, H, W] -> [B, count, 3, H, W] (repeats when short)."""
    indices = uniform_frame_indices(videos.shape[1], count, device=videos.device)
    return videos.index_select(1, indices)


class BlipScorer(nn.Module):
    """BLIP encoders (``blip``), ImageReward's head (``mlp``) and a tokenizer built on first use.

    ``load_imagereward_weights(scorer, "ImageReward.pt")`` fills ``blip`` and ``mlp``.
    """

    def __init__(self, spec: BlipSpec, tokenizer: str, max_length: int):
        super().__init__()
        self.blip = BlipEncoders(spec)
        self.mlp = ImageRewardHead(spec.text_width)
        self.tokenizer_source = tokenizer
        self.max_length = max_length
        self._tokenizer: ImageRewardTokenizer | None = None

    @property
    def tokenizer(self) -> ImageRewardTokenizer:
        if self._tokenizer is None:
            self.set_tokenizer(ImageRewardTokenizer.from_source(self.tokenizer_source, self.max_length))
        return self._tokenizer

    def set_tokenizer(self, tokenizer: ImageRewardTokenizer) -> None:
        """Use ``tokenizer``; its vocabulary must be the one the text encoder was trained with."""
        expected = self.blip.spec.vocab_size
        if tokenizer.vocab_size != expected:
            raise ValueError(
                f"the tokenizer has {tokenizer.vocab_size} tokens but the text encoder embeds {expected}; "
                "ImageReward needs the bert-base-uncased vocabulary (+[DEC], [ENC]) and the tiny presets "
                "the 'tiny-characters' one."
            )
        self._tokenizer = tokenizer

    def compile_targets(self, prefix: str) -> dict[str, tuple[nn.Module, str]]:
        """BLIP's image and text encoders, named under ``prefix``, for ``VideoReward.compile``."""
        return {f"{prefix}.encode_image": (self.blip, "encode_image"), f"{prefix}.encode_text": (self.blip, "encode_text")}

    def tokenize(self, prompts: Sequence[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> ``(input_ids, attention_mask)`` [N, max_length] on ``device``."""
        return self.tokenizer(prompts, device=device)

    def encode_frames(self, frames: torch.Tensor, compute_dtype: torch.dtype | None) -> torch.Tensor:
        """Frames [N, 3, H, W] in [0, 1] -> image tokens [N, 1 + patches, vision_width] (backbone autocast)."""
        pixels = imagereward_pixels(frames, self.blip.spec.image_size)
        with backbone_autocast(frames.device, compute_dtype):
            return self.blip.encode_image(pixels)

    def score_tokens(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        image_tokens: torch.Tensor,
        compute_dtype: torch.dtype | None,
    ) -> torch.Tensor:
        """Text + image tokens -> ImageReward-normalised score [N], the head run in fp32."""
        with backbone_autocast(image_tokens.device, compute_dtype):
            features = self.blip.text_features(input_ids, attention_mask, image_tokens)
        with full_precision(features.device):
            return self.mlp(features.float())
