from pathlib import Path

import pytest

SHAKESPEARE = Path(__file__).resolve().parents[2] / "../shared/data/tinyshakespeare.txt"


@pytest.fixture(scope="session")
def shakespeare_file() -> Path:
    if not SHAKESPEARE.exists():
        pytest.skip(f"{SHAKESPEARE} not present")
    return SHAKESPEARE.resolve()
