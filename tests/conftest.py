import os

import pytest
import torch

# Keep the suite light on our 2-core machines and deterministic.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# The same numbers on every machine: "auto" precision and engine would pick bf16 and OpenVINO on
# some CPUs only. tests/test_engine.py checks the automatic choices themselves.
os.environ.setdefault("VIDRESTORE_PRECISION", "fp32")
os.environ.setdefault("VIDRESTORE_ENGINE", "eager")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow test: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """Run a test module's tiny networks on one thread: fastest for them, and they do not fight
    other jobs for the cores (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
