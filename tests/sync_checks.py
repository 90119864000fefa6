"""Finding host synchronisations in a reward's hot path, with and without a GPU.

* ``fake_cuda_forward``: runs a reward on a simulated CUDA device on any machine. Tensors on the
  device are fake (shapes only); host tensors are real. Every device value read on the host
  (``.item()``, ``float(t)``, ``bool(t)``, ``if t``, ``nonzero``, ...) and every blocking copy between
  host and device is recorded with the code line that asked for it: exactly what stalls a CUDA stream.
* ``cpu_backward_scalar_reads``: the backward pass has no host logic of its own; on the CPU it must not
  read a single scalar either.
* ``forward_backward_in_sync_error_mode``: the real thing on a GPU, under
  ``torch.cuda.set_sync_debug_mode("error")``.
"""
from __future__ import annotations

import contextlib
import functools
import sys
import traceback
from collections.abc import Iterator, Sequence

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_leaves

aten = torch.ops.aten

#: Operators that wait for the device because their output (or its size) depends on device values.
SYNCING_OPS = {
    aten._local_scalar_dense.default: "reads a device value on the host (.item(), float(t), bool(t), if t)",
    aten.nonzero.default: "nonzero (output size depends on device values)",
    aten.masked_select.default: "masked_select (output size depends on device values)",
    aten.is_nonzero.default: "is_nonzero (reads a device value)",
    aten.equal.default: "torch.equal (reads a device value)",
    aten._unique2.default: "unique (output size depends on device values)",
    aten.unique_consecutive.default: "unique_consecutive (output size depends on device values)",
}


def _caller() -> str:
    """The innermost project frames of the current stack, e.g. ``validation.py:51 <- base.py:70``."""
    frames = [
        frame for frame in traceback.extract_stack()[:-2]
        if "/reward/" in frame.filename or "/integrations/" in frame.filename
    ]
    return " <- ".join(f"{frame.filename.rsplit('/', 2)[-2]}/{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
                       for frame in frames[-3:][::-1]) or "outside the project"


def _copy_kind(source: torch.device, target: torch.device, non_blocking: bool) -> str | None:
    if source.type != "cpu" and target.type == "cpu":
        return "device-to-host copy"
    if source.type == "cpu" and target.type != "cpu" and not non_blocking:
        return "blocking host-to-device copy (use reward.transfer.to_device or device_constant)"
    return None


class HostSyncRecorder(TorchDispatchMode):
    """Runs host ops for real and device ops on fake tensors; raises ``AssertionError`` at the first sync.

    ``strict=False`` (a warm-up call) lets copies and scalar reads pass (a device value read on the host is 0).
    """

    def __init__(self, strict: bool = True) -> None:
        super().__init__()
        self.strict = strict

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves = tree_leaves((args, kwargs))
        on_device = any(isinstance(leaf, FakeTensor) for leaf in leaves) or any(
            isinstance(leaf, torch.device) and leaf.type != "cpu" for leaf in leaves
        )
        if not on_device:
            with _disable_current_modes():
                return func(*args, **kwargs)
        problem = SYNCING_OPS.get(func)
        if func is aten.index.Tensor and any(
            isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8) for index in args[1]
        ):
            problem = "boolean-mask indexing (nonzero inside)"
        if func is aten._to_copy.default and kwargs.get("device") is not None:
            problem = _copy_kind(args[0].device, torch.device(kwargs["device"]), kwargs.get("non_blocking", False))
        if func is aten.copy_.default:
            non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
            problem = _copy_kind(args[1].device, args[0].device, non_blocking)
        if problem is not None and not self.strict:
            if func is aten._local_scalar_dense.default:
                dtype = args[0].dtype
                return False if dtype == torch.bool else 0.0 if dtype.is_floating_point else 0
            if func in (aten._to_copy.default, aten.copy_.default):
                problem = None  # other syncing ops have no fake result: they fail even in a warm-up
        if problem is not None:
            raise AssertionError(f"host synchronisation in the hot path: {problem} at {_caller()}")
        return func(*args, **kwargs)


@contextlib.contextmanager
def fresh_caches() -> Iterator[None]:
    """Empty the project's memoised device tables before and after: fake device tensors must not outlive the check."""

    def clear() -> None:
        for name, module in list(sys.modules.items()):
            if name.split(".")[0] not in ("reward", "integrations"):
                continue
            for value in list(vars(module).values()):
                if isinstance(value, functools._lru_cache_wrapper):
                    value.cache_clear()

    clear()
    try:
        yield
    finally:
        clear()


def fake_cuda_forward(model: torch.nn.Module, videos_shape: Sequence[int], prompts: list[str] | None, calls: int = 2):
    """Score random videos ``calls`` times on a simulated CUDA device; the first call is the warm-up (memoised
    tables, prompt caches), the others must not synchronise. Returns the last output (fake tensors)."""
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    with fresh_caches():
        with fake:
            state = {
                name: tensor.to("cuda").detach().requires_grad_(tensor.requires_grad)
                for name, tensor in (*model.named_parameters(), *model.named_buffers())
            }
            videos = torch.rand(*videos_shape, device="cuda", requires_grad=True)
        with fake, HostSyncRecorder(strict=False):
            functional_call(model, state, (videos, prompts))
        for _ in range(calls - 1):
            with fake, HostSyncRecorder():
                output = functional_call(model, state, (videos, prompts))
    return output


class ScalarReadCounter(TorchDispatchMode):
    """Counts every syncing op (see ``SYNCING_OPS``) by code location; on the CPU each would be a GPU stall."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in SYNCING_OPS:
            where = f"{SYNCING_OPS[func]} at {_caller()}"
            self.reads[where] = self.reads.get(where, 0) + 1
        return func(*args, **(kwargs or {}))


def cpu_backward_scalar_reads(model: torch.nn.Module, videos_shape: Sequence[int], prompts: list[str] | None) -> dict:
    """Syncing ops recorded during the backward pass of one CPU forward+backward."""
    videos = torch.rand(*videos_shape, requires_grad=True)
    output = model(videos, prompts)
    with ScalarReadCounter() as counter:
        output.score.sum().backward()
    return counter.reads


def forward_backward_in_sync_error_mode(model: torch.nn.Module, videos: torch.Tensor, prompts: list[str] | None) -> None:
    """Forward+backward on CUDA after a warm-up call; any synchronising CUDA call raises a RuntimeError."""
    model(videos.clone().requires_grad_(True), prompts).score.sum().backward()  # warm-up: tables, caches
    torch.cuda.synchronize()
    pixels = videos.clone().requires_grad_(True)
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        model(pixels, prompts).score.sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert torch.isfinite(pixels.grad).all()
