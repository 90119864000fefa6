"""Reading and writing weights: atomic files, strict loads with errors that list the keys."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import CheckpointError

__all__ = [
    "CheckpointError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_path",
    "save_safetensors",
    "load_safetensors",
    "load_torch_checkpoint",
    "strip_prefix",
    "load_state_dict_strict",
]

#: How many key names an error message lists before summarising.
MAX_KEYS_SHOWN = 12


class atomic_path:
    """Context manager yielding a temp path next to ``path``; renamed onto ``path`` on success.

    Nothing half-written is ever visible under the final name: on error the temp file is removed.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; finished files get the usual permissions
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_safetensors(state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Save a state dict as safetensors atomically; tensors sharing storage are copied apart."""
    seen: set[int] = set()
    tensors = {}
    for key, value in state.items():
        value = value.detach().contiguous()
        pointer = value.untyped_storage().data_ptr()
        if pointer in seen:
            value = value.clone()
        seen.add(pointer)
        tensors[key] = value.cpu()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})


def load_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist; save with save_pretrained() first.")
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path} is not a readable safetensors file ({error}); re-download or re-save it.") from error


def load_torch_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a ``.pt``/``.pth`` state dict safely (``weights_only``), unwrapping ``state_dict``/``model``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path} could not be read as a PyTorch checkpoint ({type(error).__name__}: {error}); "
            "the file may be truncated or not a checkpoint: download it again."
        ) from error
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(payload, dict) and isinstance(payload.get(wrapper), dict):
            payload = payload[wrapper]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors.")
    return payload


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove ``prefix`` (e.g. ``"module."`` from DataParallel) from every key that has it."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def _show(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_KEYS_SHOWN])
    more = len(keys) - MAX_KEYS_SHOWN
    return shown + (f", ... (+{more} more)" if more > 0 else "")


def load_state_dict_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """``load_state_dict(strict=True)`` with one error naming missing, unexpected and mis-shaped keys."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k} (checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)})"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_show(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_show(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} keys with other shapes: {_show(mismatched)}")
    if problems:
        raise CheckpointError(
            f"{source} does not match {type(module).__name__}: " + "; ".join(problems)
            + ". Is it the right checkpoint for this model and size, and was it fully downloaded?"
        )
    module.load_state_dict(dict(state), strict=True)
