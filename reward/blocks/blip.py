"""BLIP as ImageReward uses it: transformers' ViT and BERT-with-cross-attention, built from a small spec.

Three transformers settings are easy to get wrong (REFERENCE.md section 5): the text config needs
``is_decoder=True`` or no cross-attention layers exist (the encoder is still run bidirectionally),
the vision LayerNorm eps is 1e-6 (the library default is 1e-5), and the image tokens are the
vision model's ``last_hidden_state`` (not its pooled output).

transformers' BLIP attention modules only have an eager path (matmul, softmax, matmul); here they
dispatch on ``config._attn_implementation`` through transformers' attention functions, as its newer
models do, and default to ``"sdpa"`` (torch's fused ``scaled_dot_product_attention``).
"""
from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.blip.modeling_blip import BlipAttention
from transformers.models.blip.modeling_blip_text import BlipTextSelfAttention

from ..precision import maybe_checkpoint
from ..imagereward.tokenizer import TINY_VOCAB_SIZE

#: Additive logit for padded text positions, as in the reference BERT.
MASKED_LOGIT = -10000.0

#: transformers attention implementation the encoders run with ("eager" is transformers' own BLIP code).
DEFAULT_ATTENTION = "sdpa"


@dataclass(frozen=True)
class BlipSpec:
    """Sizes of the two encoders; the defaults are ImageReward's (ViT-L/16 at 224 + BERT-base)."""

    vision_width: int = 1024
    vision_depth: int = 24
    vision_heads: int = 16
    vision_mlp: int = 4096
    image_size: int = 224
    patch_size: int = 16
    text_width: int = 768
    text_depth: int = 12
    text_heads: int = 12
    text_intermediate: int = 3072
    vocab_size: int = 30524
    max_positions: int = 512
    pad_token_id: int = 0
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1

    @classmethod
    def coerce(cls, value: "BlipSpec | Mapping[str, Any] | None", base: "BlipSpec | None" = None) -> "BlipSpec":
        """A spec from a spec, or from a (partial) dict of fields laid over ``base``."""
        if isinstance(value, BlipSpec):
            return value
        fields = dataclasses.asdict(base or cls())
        unknown = sorted(set(value or {}) - set(fields))
        if unknown:
            raise ValueError(f"unknown BLIP size fields {unknown}; known fields are {sorted(fields)}")
        return cls(**{**fields, **dict(value or {})})

    def with_med_config(self, med_config: Mapping[str, Any] | str | Path) -> "BlipSpec":
        """Take the text-encoder sizes from ImageReward's ``med_config.json`` (a path or its parsed dict)."""
        if not isinstance(med_config, Mapping):
            med_config = json.loads(Path(med_config).read_text())
        names = {
            "hidden_size": "text_width",
            "num_hidden_layers": "text_depth",
            "num_attention_heads": "text_heads",
            "intermediate_size": "text_intermediate",
            "vocab_size": "vocab_size",
            "max_position_embeddings": "max_positions",
            "pad_token_id": "pad_token_id",
            "hidden_dropout_prob": "hidden_dropout",
            "attention_probs_dropout_prob": "attention_dropout",
        }
        return dataclasses.replace(self, **{ours: med_config[theirs] for theirs, ours in names.items() if theirs in med_config})

    def vision_config(self) -> BlipVisionConfig:
        return BlipVisionConfig(
            hidden_size=self.vision_width,
            intermediate_size=self.vision_mlp,
            num_hidden_layers=self.vision_depth,
            num_attention_heads=self.vision_heads,
            image_size=self.image_size,
            patch_size=self.patch_size,
            hidden_act="gelu",
            layer_norm_eps=1e-6,
            initializer_range=0.02,
        )

    def text_config(self) -> BlipTextConfig:
        return BlipTextConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.text_width,
            encoder_hidden_size=self.vision_width,
            intermediate_size=self.text_intermediate,
            num_hidden_layers=self.text_depth,
            num_attention_heads=self.text_heads,
            max_position_embeddings=self.max_positions,
            hidden_act="gelu",
            layer_norm_eps=1e-12,
            hidden_dropout_prob=self.hidden_dropout,
            attention_probs_dropout_prob=self.attention_dropout,
            pad_token_id=self.pad_token_id,
            bos_token_id=self.vocab_size - 2,
            is_decoder=True,
            use_cache=False,
        )


#: Small random BLIP for tests and quick experiments (pairs with the ``tiny-characters`` vocabulary).
BLIP_TINY = BlipSpec(
    vision_width=32,
    vision_depth=2,
    vision_heads=2,
    vision_mlp=64,
    patch_size=32,
    text_width=32,
    text_depth=2,
    text_heads=2,
    text_intermediate=64,
    vocab_size=TINY_VOCAB_SIZE,
)


def replace_config(config: Any, **changes: Any) -> Any:
    """A copy of a dataclass config with a ``blip`` field, changed; ``blip`` may be a partial dict of sizes."""
    if "blip" in changes:
        changes["blip"] = BlipSpec.coerce(changes["blip"], base=config.blip)
    return dataclasses.replace(config, **changes)


class DispatchedBlipAttention(BlipAttention):
    """transformers' BLIP ViT attention routed through ``ALL_ATTENTION_FUNCTIONS[config._attn_implementation]``
    (``"eager"``: transformers' own forward). Same parameters and outputs; no attention probabilities."""

    def forward(self, hidden_states: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, None]:
        implementation = self.config._attn_implementation
        if implementation == "eager":
            return super().forward(hidden_states, **kwargs)
        batch, length, width = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, None)
        dropout = self.dropout.p if self.training else 0.0
        out, _ = attend(self, query, key, value, None, dropout=dropout, scaling=self.scale, is_causal=False)
        return self.projection(out.reshape(batch, length, width)), None


class DispatchedBlipTextSelfAttention(BlipTextSelfAttention):
    """transformers' BLIP text (self- or cross-) attention routed like :class:`DispatchedBlipAttention`; the
    additive padding mask is passed on as the attention mask. A key/value cache (``cache``, ``past_key_values`` in
    older transformers) takes transformers' own path."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        implementation = self.config._attn_implementation
        if implementation == "eager" or kwargs.get("cache") is not None or kwargs.get("past_key_values") is not None:
            return super().forward(hidden_states, attention_mask=attention_mask, encoder_hidden_states=encoder_hidden_states,
                                   encoder_attention_mask=encoder_attention_mask, **kwargs)
        cross = encoder_hidden_states is not None
        context = encoder_hidden_states if cross else hidden_states
        mask = encoder_attention_mask if cross else attention_mask
        query = self.query(hidden_states).unflatten(-1, (-1, self.attention_head_size)).transpose(1, 2)
        key = self.key(context).unflatten(-1, (-1, self.attention_head_size)).transpose(1, 2)
        value = self.value(context).unflatten(-1, (-1, self.attention_head_size)).transpose(1, 2)
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, None)
        dropout = self.dropout.p if self.training else 0.0
        out, _ = attend(self, query, key, value, mask, dropout=dropout, scaling=self.attention_head_size**-0.5, is_causal=False)
        return out.reshape(*hidden_states.shape[:-1], self.all_head_size), None


#: transformers' eager-only BLIP attention classes -> the dispatching subclasses BlipEncoders uses.
DISPATCHED_ATTENTION = {BlipAttention: DispatchedBlipAttention, BlipTextSelfAttention: DispatchedBlipTextSelfAttention}


def _run_directly(function: Callable[..., Any], *args: Any) -> Any:
    """transformers' per-layer checkpoint hook, made a plain call: ``BlipEncoders`` checkpoints the layers itself."""
    return function(*args)


class BlipEncoders(nn.Module):
    """The image encoder and the image-grounded text encoder of ImageReward's BLIP.

    Parameter names are those of transformers' ``BlipForImageTextRetrieval`` (``vision_model.*``,
    ``text_encoder.*``). Set ``gradient_checkpointing`` to recompute each transformer layer in
    backward, in eval mode as well: transformers' own switch only acts in training mode, so its
    layers run plainly and this module checkpoints them. Attention runs with ``attention``
    (transformers' name: ``"sdpa"`` by default, ``"eager"``; see :meth:`set_attention_implementation`).
    """

    #: A backbone for reward.precision.backbone_modules (low-precision weight storage, compilation).
    is_backbone = True

    def __init__(self, spec: BlipSpec, attention: str = DEFAULT_ATTENTION):
        super().__init__()
        self.spec = spec
        self.vision_model = BlipVisionModel(spec.vision_config())
        self.text_encoder = BlipTextModel(spec.text_config(), add_pooling_layer=False)
        self.gradient_checkpointing = False
        for module in self.modules():
            if isinstance(module, GradientCheckpointingLayer):
                module._gradient_checkpointing_func = _run_directly
            if type(module) in DISPATCHED_ATTENTION:
                module.__class__ = DISPATCHED_ATTENTION[type(module)]  # same parameters, dispatching forward
        self.set_attention_implementation(attention)

    @property
    def attention_implementation(self) -> str:
        """The transformers attention implementation both encoders run (their configs' ``_attn_implementation``)."""
        return self.vision_model.config._attn_implementation

    def set_attention_implementation(self, name: str) -> "BlipEncoders":
        """Run both encoders' attention with transformers' ``name`` (``"sdpa"``, ``"eager"``, ...)."""
        if name != "eager" and name not in ALL_ATTENTION_FUNCTIONS:
            raise ValueError(f"unknown attention implementation {name!r}; choose 'eager' or one of {ALL_ATTENTION_FUNCTIONS.valid_keys()}")
        self.vision_model.config._attn_implementation = name
        self.text_encoder.config._attn_implementation = name
        return self

    @property
    def vision_layers(self) -> nn.ModuleList:
        return self.vision_model.encoder.layers

    @property
    def text_layers(self) -> nn.ModuleList:
        return self.text_encoder.encoder.layer

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixel values [N, 3, 224, 224] -> image tokens [N, 1 + patches, vision_width] (CLS first)."""
        hidden = self.vision_model.embeddings(pixel_values)
        for layer in self.vision_layers:
            hidden = maybe_checkpoint(layer, hidden, enabled=self.gradient_checkpointing)
        return self.vision_model.post_layernorm(hidden)

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_tokens: torch.Tensor
    ) -> torch.Tensor:
        """Bidirectional text encoding with cross-attention to every image token -> [N, L, text_width]."""
        hidden = self.text_encoder.embeddings(input_ids=input_ids)
        padding = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * MASKED_LOGIT
        for layer in self.text_layers:
            hidden = maybe_checkpoint(
                functools.partial(layer, attention_mask=padding), hidden, image_tokens, enabled=self.gradient_checkpointing
            )
        return hidden

    def text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_tokens: torch.Tensor
    ) -> torch.Tensor:
        """The multimodal feature ImageReward scores: the [CLS] position of the text encoder output."""
        return self.encode_text(input_ids, attention_mask, image_tokens)[:, 0]
