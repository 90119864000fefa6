"""``VideoReward``: the one interface every scorer implements, plus native save/load."""
from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from . import checkpoints
from .errors import RewardInputError
from .frame_plan import FramePlan, SparseVideo, check_clip, unit_pixels
from .output import RewardOutput
from .precision import parse_dtype
from .validation import check_prompts, check_videos

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1

#: architecture name (as written in config.json) -> VideoReward subclass
ARCHITECTURES: dict[str, type["VideoReward"]] = {}


def register_architecture(cls: type["VideoReward"]) -> type["VideoReward"]:
    """Class decorator: make ``cls`` loadable by ``from_pretrained`` under ``cls.architecture``."""
    ARCHITECTURES[cls.architecture] = cls
    return cls


class VideoReward(nn.Module, abc.ABC):
    """A differentiable reward: ``videos [B, T, 3, H, W]`` in [0, 1] + prompts -> ``RewardOutput``.

    Subclasses set ``architecture`` and ``config_class`` (a dataclass), build their modules from
    the config in ``__init__`` and implement ``_forward`` on validated inputs. The base class
    handles validation, device placement, the compute dtype used for backbone autocast,
    gradient checkpointing and the native safetensors + JSON format.
    """

    architecture: ClassVar[str] = ""
    config_class: ClassVar[type] = dict
    requires_prompts: ClassVar[bool] = True
    component_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any):
        super().__init__()
        self.config = config
        self.compute_dtype: torch.dtype | None = None
        self.gradient_checkpointing = False

    # -- inputs ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    def forward(
        self, videos: torch.Tensor | SparseVideo, prompts: Sequence[str] | str | None = None, **kwargs: Any
    ) -> RewardOutput:
        """Score ``videos`` [B, T, 3, H, W] (floats in [0, 1]) against ``prompts`` (one per video).

        ``videos`` may instead hold only the frames a plan names: a ``SparseVideo`` from
        ``read_video(path, frames=reward)``, or a clip [B, K, 3, H, W] (uint8 levels or floats) with
        ``frame_plan=``. The reward then samples the same source frames, so the score is the full video's.
        """
        videos, frame_plan = self._planned_clip(videos, kwargs.pop("frame_plan", None))
        if frame_plan is None or videos.is_floating_point():
            videos = check_videos(videos)
        prompts = check_prompts(prompts, videos.shape[0], required=self.requires_prompts)
        if videos.device != self.device:
            videos = videos.to(self.device)
        if frame_plan is not None:
            kwargs["frame_plan"] = frame_plan
        return self._forward(videos.float() if videos.dtype not in (torch.float64, torch.uint8) else videos, prompts, **kwargs)

    def frame_plan(self, num_frames: int) -> FramePlan:
        """The source frames this reward looks at in a video of ``num_frames`` frames with its deterministic default
        views, so a file is decoded only there. The default is every frame; rewards that sample frames override it
        (and then take ``frame_plan`` in ``_forward``, reading frames through ``reward.frame_plan.take_frames``)."""
        return FramePlan.every_frame_of(num_frames)

    def _planned_clip(
        self, videos: torch.Tensor | SparseVideo, frame_plan: FramePlan | None
    ) -> tuple[torch.Tensor, FramePlan | None]:
        """``(videos, plan)`` for ``_forward``: a clip holding every frame becomes a plain video (plan None); a partial
        clip must hold every frame this reward's own plan needs."""
        if isinstance(videos, SparseVideo):
            if frame_plan is not None:
                raise RewardInputError("a SparseVideo carries its frame plan; do not pass frame_plan as well.")
            videos, frame_plan = videos.frames[None], videos.plan
        if frame_plan is None:
            return videos, None
        check_clip(videos, frame_plan)
        if frame_plan.covers_every_frame:
            return unit_pixels(videos), None
        if not frame_plan.contains(self.frame_plan(frame_plan.num_frames)):
            raise RewardInputError(
                f"this clip ({frame_plan!r}) lacks frames the {self.architecture or type(self).__name__!r} reward looks at "
                f"({self.frame_plan(frame_plan.num_frames)!r}); read the file with frames=this reward, or pass the full video."
            )
        return videos, frame_plan

    @abc.abstractmethod
    def _forward(self, videos: torch.Tensor, prompts: list[str] | None, **kwargs: Any) -> RewardOutput:
        """Score ``videos`` already validated by ``forward``: [B, T, 3, H, W] float on the model device."""

    @torch.no_grad()
    def score(self, videos: torch.Tensor, prompts: Sequence[str] | str | None = None, **kwargs: Any) -> RewardOutput:
        """Evaluation convenience: eval mode, no autograd graph; restores the previous mode."""
        was_training = self.training
        self.eval()
        try:
            return self(videos, prompts, **kwargs)
        finally:
            self.train(was_training)

    # -- precision ------------------------------------------------------------------------
    def set_compute_dtype(self, dtype: torch.dtype | str | None) -> "VideoReward":
        """Run backbones under autocast in ``dtype`` (bf16/fp16); heads and fusion stay fp32."""
        self.compute_dtype = parse_dtype(dtype)
        return self

    def set_gradient_checkpointing(self, enabled: bool = True) -> "VideoReward":
        """Recompute backbone activations in backward to save memory (non-reentrant)."""
        for module in self.modules():
            if isinstance(module, VideoReward) or hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = enabled
        return self

    # -- native format ----------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        """The JSON-serialisable config this model was built from."""
        if dataclasses.is_dataclass(self.config):
            return dataclasses.asdict(self.config)
        return dict(self.config)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (each atomically) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "architecture": self.architecture,
            "format_version": FORMAT_VERSION,
            "config": self.config_dict(),
        }
        checkpoints.save_safetensors(self.state_dict(), directory / WEIGHTS_NAME)
        checkpoints.atomic_write_text(directory / CONFIG_NAME, json.dumps(payload, indent=2, sort_keys=True))
        return directory

    @classmethod
    def from_config(cls, config: Any) -> "VideoReward":
        """Build with random weights from a config dataclass or a plain dict."""
        if isinstance(config, dict) and cls.config_class is not dict:
            config = cls.config_class(**config)
        return cls(config)

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
    ) -> "VideoReward":
        """Load a native checkpoint from a local folder, a hub repo id or a URL of a folder."""
        from .weights import resolve_pretrained_dir

        directory = resolve_pretrained_dir(source)
        payload = json.loads((directory / CONFIG_NAME).read_text())
        architecture = payload.get("architecture")
        model_cls = ARCHITECTURES.get(architecture)
        if model_cls is None:
            from .registry import import_builtin_architectures

            import_builtin_architectures()
            model_cls = ARCHITECTURES.get(architecture)
        if model_cls is None:
            raise checkpoints.CheckpointError(
                f"{directory / CONFIG_NAME} names architecture {architecture!r}, which is not one of "
                f"{sorted(ARCHITECTURES)}; was it written by another library?"
            )
        if cls is not VideoReward and not issubclass(model_cls, cls):
            raise checkpoints.CheckpointError(
                f"{directory} holds a {architecture!r} model, not a {cls.architecture!r} one."
            )
        model = model_cls.from_config(payload["config"])
        state = checkpoints.load_safetensors(directory / WEIGHTS_NAME)
        checkpoints.load_state_dict_strict(model, state, source=str(directory / WEIGHTS_NAME))
        return place(model, device=device, dtype=dtype)


def place(model: VideoReward, *, device: torch.device | str | None, dtype: torch.dtype | str | None) -> VideoReward:
    """Move to ``device``, set the backbone compute dtype, and switch to eval mode."""
    if device is not None:
        model.to(torch.device(device))
    model.set_compute_dtype(dtype)
    return model.eval()
