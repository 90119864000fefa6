"""Shared by the diffusers integration tests."""
from __future__ import annotations

import pytest
import torch

#: The tiny families that sample by flow matching (DDPO uses the flow SDE step on them).
FLOW_FAMILIES = ("wan", "ltx", "mochi", "hunyuan-video")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models are dominated by thread start-up on a shared 2-core machine: run them on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
