"""``torch.compile`` for a reward's backbones, falling back to eager execution with one warning.

Only the backbones are compiled (Swin-3D, ConvNeXt-3D, BLIP's encoders, PCQA's timm model): they
hold nearly all the arithmetic and are pure tensor code, while views, tokenisers and input checks
around them would only break graphs. A backbone call is replaced by an instance attribute (the
class method stays untouched), so parameter names, ``state_dict`` keys and checkpoints are exactly
those of the eager model: no ``_orig_mod.`` prefix can reach a saved file.

Shapes: ``dynamic=None`` (the default) lets torch compile the first batch size as static shapes
and, on the first call with another size, one graph whose batch dimension is symbolic, which then
serves every size: at most two compilations per backbone and precision setting. ``dynamic=False``
compiles one graph per shape instead (best kernels for a fixed batch size).

Failures are caught where the compiled forward runs; torch compiles a backward graph lazily at the
first ``backward()``, so a failure there raises from ``backward()`` instead.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

#: ``compile_status`` values.
COMPILED = "compiled"
EAGER = "eager"


def is_compile_failure(error: BaseException) -> bool:
    """Whether ``error`` comes from torch's compiler stack (Dynamo, AOTAutograd, Inductor) rather than the inputs."""
    from torch._dynamo.exc import TorchDynamoException

    module = type(error).__module__
    return isinstance(error, TorchDynamoException) or module.startswith(
        ("torch._dynamo", "torch._inductor", "torch._functorch")
    )


def describe_failure(error: BaseException) -> str:
    """``Type: first line`` of ``error``, then of its root cause when torch wrapped one (BackendCompilerFailed ...)."""
    parts = []
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        parts.append(f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__)
        error = getattr(error, "inner_exception", None) or error.__cause__
    return parts[0] if len(parts) == 1 else f"{parts[0]} <- {parts[-1]}"


class CompileSession:
    """The backbones of one reward compiled by one ``compile`` call: their status and the single warning."""

    def __init__(self, reward_name: str) -> None:
        self.reward_name = reward_name
        self.status: dict[str, str] = {}
        self.warned = False

    def fall_back(self, label: str, error: BaseException) -> None:
        """Record that ``label`` runs eagerly; warn the first time for this reward."""
        reason = describe_failure(error)
        self.status[label] = f"{EAGER} ({reason})"
        if self.warned:
            return
        self.warned = True
        warnings.warn(
            f"torch.compile failed for {self.reward_name}.{label} ({reason}); it runs eagerly "
            "from now on, as does any other backbone of this reward whose compilation fails (scores are the same, "
            "only slower). The reward's compile_status says which backbones are compiled.",
            RuntimeWarning,
            stacklevel=2,
        )


class GuardedCall:
    """A compiled method with an eager fallback: a compile failure on any call reverts to the class method."""

    def __init__(self, owner: nn.Module, method: str, compiled: Callable[..., Any], label: str, session: CompileSession):
        self.owner = owner
        self.method = method
        self.compiled = compiled
        self.label = label
        self.session = session

    def eager(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(type(self.owner), self.method)(self.owner, *args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.compiled(*args, **kwargs)
        except Exception as error:
            if not is_compile_failure(error):
                raise
            result = self.eager(*args, **kwargs)  # an error here is the input's: it propagates, compilation stays on
            uncompile_method(self.owner, self.method)
            self.session.fall_back(self.label, error)
            return result


def uncompile_method(owner: nn.Module, method: str) -> None:
    """Remove a compiled wrapper set by :func:`compile_method` (the class method is used again)."""
    if isinstance(owner.__dict__.get(method), GuardedCall):
        delattr(owner, method)


def compile_method(owner: nn.Module, method: str, *, label: str, session: CompileSession, **options: Any) -> None:
    """Make ``owner.<method>(...)`` run ``torch.compile(<method>, **options)``, falling back to eager on failure."""
    uncompile_method(owner, method)
    bound = getattr(owner, method)
    try:
        compiled = torch.compile(bound, **options)
    except Exception as error:  # e.g. a Python version Dynamo does not support, an unknown backend
        session.fall_back(label, error)
        return
    setattr(owner, method, GuardedCall(owner, method, compiled, label, session))
    session.status[label] = COMPILED
