"""The PCQA vision path: a timm backbone on every sampled frame, resized and normalised inside ``forward``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import WeightsNotFoundError
from ..precision import backbone_autocast, storage_float_dtype
from ..video.normalize import normalize_levels
from ..video.resize import resize_frames
from ..video.sampling import uniform_frame_indices


def create_timm_backbone(
    name: str, kwargs: dict[str, Any], *, pretrained: bool = False, weights_file: str | Path | None = None
) -> nn.Module:
    """A classifier-free timm model; ``pretrained`` fetches its ImageNet weights (hub) or reads ``weights_file``."""
    import timm

    if not timm.is_model(name):
        raise ValueError(f"timm has no model {name!r}; see timm.list_models('*{name.split('.')[0][:8]}*').")
    if not pretrained:
        return use_fused_attention(timm.create_model(name, pretrained=False, num_classes=0, **kwargs))
    overlay = {"file": str(weights_file)} if weights_file is not None else None
    try:
        model = timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay, **kwargs)
    except Exception as error:  # the hub raises many types: offline, 404, auth, corrupt file
        raise WeightsNotFoundError(
            f"could not load pretrained timm weights for {name!r} ({type(error).__name__}: {error}). timm downloads "
            "them from the Hugging Face hub; offline, pass backbone_weights=/path/to/file (a timm checkpoint)."
        ) from error
    return use_fused_attention(model)


def use_fused_attention(model: nn.Module) -> nn.Module:
    """Switch timm's per-module ``fused_attn`` flag on (``scaled_dot_product_attention`` instead of matmul + softmax)
    in every attention module of ``model``, whatever ``TIMM_FUSED_ATTN`` says; attention-free backbones
    (ConvNeXt) and linear-attention ones (EfficientViT's ReLU attention) have no such module."""
    for module in model.modules():
        if isinstance(getattr(module, "fused_attn", None), bool):
            module.fused_attn = True
    return model


def sample_frames(videos: torch.Tensor, max_frames: int) -> torch.Tensor:
    """Keep every frame of short videos; pick ``max_frames`` uniformly spread frames of longer ones."""
    if videos.shape[1] <= max_frames:
        return videos
    return videos[:, uniform_frame_indices(videos.shape[1], max_frames, device=videos.device)]


class FrameBackbone(nn.Module):
    """Per-frame pooled features ``[B, T', C]`` of a timm backbone (final-stage features, globally pooled).

    Frames are resized to ``resolution`` x ``resolution`` (bilinear, antialiased) and normalised
    with ``mean``/``std`` in the backbone's float dtype; the backbone runs under the compute-dtype
    autocast, features return in that dtype (fp32 unless the module was cast to fp64; fp32 for weights
    stored in bf16).
    Convolutional outputs are averaged over space; transformer tokens use the model's own pooling.
    """

    #: A backbone for reward.precision.backbone_modules (low-precision weight storage, compilation).
    is_backbone = True

    def __init__(
        self,
        model: nn.Module,
        *,
        resolution: int,
        num_frames: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ):
        super().__init__()
        self.model = model
        self.resolution = resolution
        self.num_frames = num_frames
        self.num_features = int(model.num_features)
        self.pixel_mean = tuple(float(v) for v in mean)
        self.pixel_std = tuple(float(v) for v in std)
        self._checkpointing = False

    @property
    def gradient_checkpointing(self) -> bool:
        return self._checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, enabled: bool) -> None:
        self.model.set_grad_checkpointing(enabled)
        self._checkpointing = bool(enabled)

    def forward(self, videos: torch.Tensor, compute_dtype: torch.dtype | None = None) -> torch.Tensor:
        videos = sample_frames(videos, self.num_frames)
        batch, frames = videos.shape[:2]
        dtype = storage_float_dtype(self.model)
        x = resize_frames(videos.flatten(0, 1).to(dtype), self.resolution)
        x = normalize_levels(x, channel_dim=1, mean=self.pixel_mean, std=self.pixel_std)
        with backbone_autocast(x.device, compute_dtype):
            features = self.model.forward_features(x)
            if features.ndim == 4:
                pooled = features.mean(dim=(2, 3))
            else:
                pooled = self.model.forward_head(features, pre_logits=True)
        return pooled.to(dtype).view(batch, frames, -1)
