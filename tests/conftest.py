"""Shared test fixtures: where the repository and the shared external data live."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"          # CI clones the repo with shared/ beside it
EXTERNAL = SHARED / "data" / "external"


@pytest.fixture(scope="session")
def external_data() -> Path:
    if not EXTERNAL.is_dir():
        pytest.skip(f"shared external data not found at {EXTERNAL}")
    return EXTERNAL


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread: tiny CPU models run several times faster that way
    on a loaded 2-core machine than with two threads contending."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
