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
