"""Make `import ansible_collections.animaflow.inference...` work without the venv's .pth file."""

import sys
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[2] / ".collections"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "gpu"

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


@pytest.fixture
def fixture_text():
    """Read a recorded tool output from tests/unit/fixtures/gpu by file name."""

    def read(name: str) -> str:
        return (FIXTURES / name).read_text(encoding="utf-8")

    return read
