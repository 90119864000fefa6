"""reward.precision: dtype names, backbone autocast, the no-AMX bf16 warning, checkpointing switch."""
from __future__ import annotations

import warnings

import pytest
import torch

from reward import precision

CPU = torch.device("cpu")


@pytest.mark.parametrize(("name", "dtype"), [("bf16", torch.bfloat16), ("BFloat16", torch.bfloat16), ("fp32", torch.float32), (None, None)])
def test_parse_dtype_accepts_names_and_dtypes(name, dtype):
    assert precision.parse_dtype(name) is dtype
    assert precision.parse_dtype(dtype) is dtype


def test_parse_dtype_rejects_unknown_names_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown dtype 'half-ish'.*'bf16'"):
        precision.parse_dtype("half-ish")


def test_backbone_autocast_runs_matmuls_in_bf16_and_fp32_is_a_no_op():
    a = torch.randn(4, 4)
    with precision.backbone_autocast(CPU, torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16
        with precision.full_precision(CPU):
            assert (a @ a).dtype == torch.float32
    for dtype in (None, torch.float32):
        with precision.backbone_autocast(CPU, dtype):
            assert not torch.is_autocast_enabled("cpu")


@pytest.fixture
def fresh_warning(monkeypatch):
    """Forget that the once-per-process warning was given, and restore that state afterwards."""
    precision.warn_slow_cpu_bf16.cache_clear()
    yield monkeypatch
    precision.warn_slow_cpu_bf16.cache_clear()


def test_bf16_on_a_cpu_without_amx_warns_once_naming_the_trade_off(fresh_warning):
    fresh_warning.setattr(precision, "cpu_has_amx", lambda: False)
    with pytest.warns(UserWarning, match="without AMX.*saves memory, not time.*dtype=None"):
        with precision.backbone_autocast(CPU, torch.bfloat16):
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with precision.backbone_autocast(CPU, torch.bfloat16):
            pass


@pytest.mark.parametrize("amx", [True, None])
def test_bf16_on_an_amx_cpu_or_unknown_cpu_does_not_warn(fresh_warning, amx):
    fresh_warning.setattr(precision, "cpu_has_amx", lambda: amx)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with precision.backbone_autocast(CPU, torch.bfloat16):
            pass


def test_cpu_has_amx_answers_a_bool_or_none():
    assert precision.cpu_has_amx() in (True, False, None)


def test_maybe_checkpoint_recomputes_only_when_enabled_and_recording_gradients():
    calls = []

    def square(x):
        calls.append(1)
        return x * x

    x = torch.ones(3, requires_grad=True)
    precision.maybe_checkpoint(square, x, enabled=True).sum().backward()
    assert len(calls) == 2 and torch.equal(x.grad, 2 * x.detach())
    calls.clear()
    precision.maybe_checkpoint(square, x, enabled=False).sum().backward()
    assert len(calls) == 1
    calls.clear()
    with torch.no_grad():
        precision.maybe_checkpoint(square, x, enabled=True)
    assert len(calls) == 1
