"""``VideoReward``: the one interface every scorer implements, plus native save/load."""
from __future__ import annotations

import abc
import dataclasses
import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from . import checkpoints
from .hub import DEFAULT_LICENSE
from .output import RewardOutput
from .precision import backbone_modules, parse_dtype, store_weights
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
        self.weights_dtype: torch.dtype | None = None
        self.gradient_checkpointing = False
        #: backbone -> "compiled" or "eager (<why>)" after :meth:`compile`; empty when not compiled
        self.compile_status: dict[str, str] = {}

    # -- inputs ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    def _tensor_device(self) -> torch.device | None:
        """Where the parameters (or buffers) live; None for a reward without any, which runs where its input is."""
        return next((tensor.device for tensor in itertools.chain(self.parameters(), self.buffers())), None)

    def forward(
        self, videos: torch.Tensor, prompts: Sequence[str] | str | None = None, **kwargs: Any
    ) -> RewardOutput:
        """Score ``videos`` [B, T, 3, H, W] (floats in [0, 1]) against ``prompts`` (one per video).

        A reward that does not read prompts (``requires_prompts = False``) ignores them unchecked."""
        videos = check_videos(videos)
        prompts = check_prompts(prompts, videos.shape[0]) if self.requires_prompts else None
        home = self._tensor_device()
        if home is not None and videos.device != home:
            videos = videos.to(home)
        return self._forward(videos.float() if videos.dtype != torch.float64 else videos, prompts, **kwargs)

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
        dtype = parse_dtype(dtype)
        if self.weights_dtype is not None and dtype in (None, torch.float32, torch.float64):
            raise ValueError(
                f"this reward stores its backbone weights in {self.weights_dtype} (weights_dtype), so its backbones "
                f"compute in that dtype: pass dtype={self.weights_dtype}, or reload it without weights_dtype for fp32."
            )
        self.compute_dtype = dtype
        return self

    def store_backbone_weights(self, dtype: torch.dtype | str) -> "VideoReward":
        """Freeze the backbones and keep their matrix-product weights in ``dtype`` (bf16 or fp16): half the memory of
        fp32 and no weight casts per call under autocast. Heads, norms and position tables stay fp32; gradients
        still reach the pixels. The backbones then compute in ``dtype`` (it becomes the compute dtype if that was
        fp32)."""
        dtype = parse_dtype(dtype)
        if dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f"weights_dtype must be bf16 or fp16 (low-precision storage), got {dtype}")
        store_weights(backbone_modules(self), dtype)
        for reward in self.modules():
            if isinstance(reward, VideoReward):
                reward.weights_dtype = dtype
                if reward.compute_dtype in (None, torch.float32, torch.float64):
                    reward.compute_dtype = dtype
        return self

    def set_gradient_checkpointing(self, enabled: bool = True) -> "VideoReward":
        """Recompute backbone activations in backward to save memory (non-reentrant)."""
        for module in self.modules():
            if isinstance(module, VideoReward) or hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = enabled
        return self

    # -- compilation --------------------------------------------------------------------------
    def compile_targets(self) -> dict[str, tuple[nn.Module, str]]:
        """The backbone calls :meth:`compile` wraps: ``name -> (module, method name)``. Subclasses list theirs."""
        return {}

    def compile(
        self,
        *,
        backend: str | Callable[..., Any] = "inductor",
        mode: str | None = None,
        dynamic: bool | None = None,
        fullgraph: bool = False,
        options: dict[str, Any] | None = None,
    ) -> "VideoReward":
        """``torch.compile`` every backbone (:meth:`compile_targets`) with these options; returns ``self``.

        Not applied by default. A backbone whose compilation fails, when wrapping or at a later
        call, runs eagerly from then on, with one warning per reward; ``compile_status`` tells
        which are compiled. State-dict keys and saved checkpoints are unchanged (see reward.compile).
        """
        from .compile import CompileSession, compile_method

        session = CompileSession(self.architecture or type(self).__name__)
        for label, (owner, method) in self.compile_targets().items():
            compile_method(
                owner, method, label=label, session=session,
                backend=backend, mode=mode, dynamic=dynamic, fullgraph=fullgraph, options=options,
            )
        self.compile_status = session.status
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

    def push_to_hub(
        self,
        repo_id: str,
        *,
        run: str | Path | None = None,
        preset: str | None = None,
        license: str = DEFAULT_LICENSE,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str | None = None,
    ) -> str:
        """Upload the native folder with a model card to hub repo ``repo_id`` (created if needed); returns the commit URL.

        ``run``: the training run (or its ``best/``) this model comes from, whose recipe, data and test
        metrics go into the card. ``reward.load(preset, weights=repo_id)`` reads the upload back.
        """
        from .hub import push_reward

        return push_reward(self, repo_id, run=run, preset=preset, license=license, private=private, token=token,
                           commit_message=commit_message)

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
        payload = read_native_config(directory)
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


def read_native_config(directory: Path) -> dict[str, Any]:
    """The ``config.json`` of a native folder: ``architecture``, ``format_version`` and the model ``config``."""
    path = Path(directory) / CONFIG_NAME
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise checkpoints.CheckpointError(f"{path} is not a readable JSON config ({error}); re-save or re-download it.") from error
    if not isinstance(payload, dict):
        raise checkpoints.CheckpointError(f"{path} holds {type(payload).__name__}, not a save_pretrained() config.")
    return payload


def place(model: VideoReward, *, device: torch.device | str | None, dtype: torch.dtype | str | None) -> VideoReward:
    """Move to ``device``, set the backbone compute dtype, and switch to eval mode."""
    if device is not None:
        model.to(torch.device(device))
    model.set_compute_dtype(dtype)
    return model.eval()
