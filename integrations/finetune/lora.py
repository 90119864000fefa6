"""LoRA on a pipeline's denoiser via peft, saved in diffusers' LoRA format.

Denoisers with diffusers' ``PeftAdapterMixin`` (Wan, CogVideoX, LTX, AnimateDiff's motion UNet, ...)
use ``add_adapter``; the ModelScope ``UNet3DConditionModel`` lacks it, so peft's
``inject_adapter_in_model`` does the same job. Files are written with the pipeline's own
``save_lora_weights`` (rank and alpha stored as adapter metadata), so ``pipe.load_lora_weights``
reads them wherever the denoiser supports it; ``load_lora`` also covers ``UNet3DConditionModel``.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import get_peft_model_state_dict
from torch import nn

#: Attention projections of diffusers' attention blocks: the usual LoRA targets for video denoisers.
DEFAULT_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"


def make_lora_config(
    rank: int = 4, alpha: float | None = None, target_modules: Sequence[str] = DEFAULT_TARGET_MODULES
) -> LoraConfig:
    """A LoRA config whose B matrices start at zero, so training starts from the base model exactly."""
    return LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=list(target_modules), init_lora_weights=True)


def add_lora(denoiser: nn.Module, config: LoraConfig) -> list[nn.Parameter]:
    """Freeze ``denoiser`` and add LoRA layers; returns the trainable (fp32) LoRA parameters."""
    denoiser.requires_grad_(False)
    if hasattr(denoiser, "add_adapter"):
        denoiser.add_adapter(config)
    else:
        inject_adapter_in_model(config, denoiser)
    parameters = [p for name, p in denoiser.named_parameters() if "lora_" in name]
    if not parameters:
        raise ValueError(
            f"no module of {type(denoiser).__name__} matched the LoRA targets {sorted(config.target_modules)}; "
            "pass target_modules naming its attention projections"
        )
    for parameter in parameters:
        parameter.requires_grad_(True)
        parameter.data = parameter.data.float()
    return parameters


def lora_layers(module: nn.Module) -> Iterator[BaseTunerLayer]:
    for child in module.modules():
        if isinstance(child, BaseTunerLayer):
            yield child


@contextlib.contextmanager
def lora_disabled(denoiser: nn.Module) -> Iterator[nn.Module]:
    """Run the base model (LoRA switched off), e.g. as the KL reference policy."""
    layers = list(lora_layers(denoiser))
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield denoiser
    finally:
        for layer in layers:
            layer.enable_adapters(True)


@contextlib.contextmanager
def lora_removed(module: nn.Module) -> Iterator[nn.Module]:
    """Temporarily put the base layers back in place of the LoRA wrappers (to save a clean base model)."""
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BaseTunerLayer):
                swapped.append((parent, name, child))
                setattr(parent, name, child.get_base_layer())
    try:
        yield module
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def denoiser_name(pipeline: Any) -> str:
    """``"unet"`` or ``"transformer"``: the component LoRA trains, as the pipeline's LoRA loader names it."""
    for name in ("transformer", "unet"):
        if getattr(pipeline, name, None) is not None:
            return name
    raise ValueError(f"{type(pipeline).__name__} has neither a unet nor a transformer to put LoRA on")


def save_lora(pipeline: Any, config: LoraConfig, directory: str | Path) -> Path:
    """Write the denoiser's LoRA as ``pytorch_lora_weights.safetensors`` via the pipeline's own saver."""
    name = denoiser_name(pipeline)
    state = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(getattr(pipeline, name)).items()}
    if not hasattr(pipeline, "save_lora_weights"):
        raise TypeError(f"{type(pipeline).__name__} has no save_lora_weights; diffusers cannot load LoRA into it")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".lora-", dir=directory) as staging:  # then renamed: atomic
        type(pipeline).save_lora_weights(
            staging,
            **{f"{name}_lora_layers": state, f"{name}_lora_adapter_metadata": config.to_dict()},
            weight_name=LORA_WEIGHT_NAME,
        )
        os.replace(Path(staging) / LORA_WEIGHT_NAME, directory / LORA_WEIGHT_NAME)
    return directory / LORA_WEIGHT_NAME


def read_lora_file(pipeline: Any, directory: str | Path) -> tuple[dict[str, Any], LoraConfig]:
    """The denoiser's LoRA tensors (peft key names) and the LoRA config stored with them by ``save_lora``."""
    name = denoiser_name(pipeline)
    state, _, metadata = pipeline.lora_state_dict(str(directory), weight_name=LORA_WEIGHT_NAME, return_lora_metadata=True)
    prefix = f"{name}."
    fields = {key[len(prefix):]: value for key, value in (metadata or {}).items() if key.startswith(prefix)}
    if not fields:
        raise ValueError(f"{directory} has no LoRA config metadata for the {name}; save it with integrations.finetune.lora.save_lora")
    config = LoraConfig(**{k: v for k, v in fields.items() if k in LoraConfig.__dataclass_fields__ and k != "peft_type"})
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, config


def set_lora_state(denoiser: nn.Module, state: dict[str, Any], *, adapter_name: str = "default") -> None:
    """Copy LoRA tensors into the adapter already on ``denoiser``; unknown modules are an error."""
    result = set_peft_model_state_dict(denoiser, state, adapter_name=adapter_name)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ValueError(f"LoRA weights name modules this {type(denoiser).__name__} lacks: {unexpected[:5]}")


def load_lora(pipeline: Any, directory: str | Path, *, adapter_name: str = "default") -> None:
    """Load a LoRA written by ``save_lora`` into ``pipeline``'s denoiser.

    Uses ``pipeline.load_lora_weights`` when the denoiser supports it; otherwise (ModelScope's
    ``UNet3DConditionModel``) injects the adapter with peft from the file's stored config.
    """
    denoiser = getattr(pipeline, denoiser_name(pipeline))
    if hasattr(denoiser, "load_lora_adapter"):
        pipeline.load_lora_weights(str(directory), weight_name=LORA_WEIGHT_NAME, adapter_name=adapter_name)
        return
    state, config = read_lora_file(pipeline, directory)
    inject_adapter_in_model(config, denoiser, adapter_name=adapter_name)
    set_lora_state(denoiser, state, adapter_name=adapter_name)
