"""The PCQA vision path: a timm backbone on every sampled frame, resized and normalised inside ``forward``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import WeightsNotFoundError
from ..frame_plan import FramePlan, source_length, take_frames
from ..precision import backbone_autocast
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
        return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    overlay = {"file": str(weights_file)} if weights_file is not None else None
    try:
        return timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay, **kwargs)
    except Exception as error:  # the hub raises many types: offline, 404, auth, corrupt file
        raise WeightsNotFoundError(
            f"could not load pretrained timm weights for {name!r} ({type(error).__name__}: {error}). timm downloads "
            "them from the Hugging Face hub; offline, pass backbone_weights=/path/to/file (a timm checkpoint)."
        ) from error


def sampled_frame_indices(num_frames: int, max_frames: int) -> torch.Tensor:
    """Every frame of short videos; ``max_frames`` uniformly spread frames of longer ones."""
    if num_frames <= max_frames:
        return torch.arange(num_frames)
    return uniform_frame_indices(num_frames, max_frames)


def sample_frames(videos: torch.Tensor, max_frames: int, frame_plan: FramePlan | None = None) -> torch.Tensor:
    """The frames :func:`sampled_frame_indices` picks from ``videos`` (a compact clip of ``frame_plan``'s frames when given)."""
    if frame_plan is None and videos.shape[1] <= max_frames:
        return videos
    return take_frames(videos, sampled_frame_indices(source_length(videos, frame_plan), max_frames), frame_plan)


class FrameBackbone(nn.Module):
    """Per-frame pooled features ``[B, T', C]`` of a timm backbone (final-stage features, globally pooled).

    Frames are resized to ``resolution`` x ``resolution`` (bilinear, antialiased) and normalised
    with ``mean``/``std`` in the backbone's dtype; the backbone runs under the compute-dtype
    autocast, features return in the backbone's dtype (fp32 unless the module was cast).
    Convolutional outputs are averaged over space; transformer tokens use the model's own pooling.
    """

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

    def frame_indices(self, num_frames: int) -> torch.Tensor:
        """The source frames this backbone looks at in a ``num_frames``-frame video."""
        return sampled_frame_indices(num_frames, self.num_frames)

    def forward(
        self, videos: torch.Tensor, compute_dtype: torch.dtype | None = None, frame_plan: FramePlan | None = None
    ) -> torch.Tensor:
        videos = sample_frames(videos, self.num_frames, frame_plan)
        batch, frames = videos.shape[:2]
        dtype = next(self.model.parameters()).dtype
        x = resize_frames(videos.flatten(0, 1).to(dtype), self.resolution)
        x = normalize_levels(x, channel_dim=1, mean=self.pixel_mean, std=self.pixel_std)
        with backbone_autocast(x.device, compute_dtype):
            features = self.model.forward_features(x)
            if features.ndim == 4:
                pooled = features.mean(dim=(2, 3))
            else:
                pooled = self.model.forward_head(features, pre_logits=True)
        return pooled.to(dtype).view(batch, frames, -1)
