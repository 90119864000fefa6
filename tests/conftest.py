"""Shared fixtures: golden reference data (outside the repo) and seeded determinism."""
from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest
import torch

#: Where the golden reference outputs live; defaults to ../shared/golden_small next to the repo.
GOLDEN_ENV = "AIGC_REWARD_GOLDEN_DIR"
#: Set to 1 (CI does) to turn a missing golden folder into a failure instead of a skip.
REQUIRE_GOLDEN_ENV = "AIGC_REWARD_REQUIRE_GOLDEN"
REPO_ROOT = Path(__file__).resolve().parents[1]


def golden_path() -> Path:
    return Path(os.environ.get(GOLDEN_ENV, REPO_ROOT.parent / "shared" / "golden_small"))


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The golden folder, or a skip (a failure when $AIGC_REWARD_REQUIRE_GOLDEN=1) if it is absent."""
    path = golden_path()
    if not (path / "README.md").is_file():
        reason = f"golden reference data not found at {path}; set {GOLDEN_ENV} to the golden_small folder"
        if os.environ.get(REQUIRE_GOLDEN_ENV) == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


#: Runs the tests marked ``cuda`` on this device instead (e.g. ``cpu``, to debug their logic without a GPU).
TEST_DEVICE_ENV = "AIGC_REWARD_TEST_DEVICE"


def gpu_test_device() -> torch.device:
    """The device of the tests marked ``cuda``: CUDA, unless $AIGC_REWARD_TEST_DEVICE names another."""
    return torch.device(os.environ.get(TEST_DEVICE_ENV, "cuda"))


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked ``cuda`` skip on machines without a CUDA GPU (unless $AIGC_REWARD_TEST_DEVICE names another device)."""
    if torch.cuda.is_available() or gpu_test_device().type != "cuda":
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; benchmarks/gpu_check.py runs these tests on one")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def http_server(tmp_path):
    """A file server on 127.0.0.1 serving tmp_path/'served': yields (that folder, its base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
