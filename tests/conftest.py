"""Shared by every test directory: tests/ on sys.path, for the helpers kept here (playbook_runner), the
per-stage timing (timing.py) and the shared llama.cpp builds (builds.py)."""

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from builds import llamacpp_builds  # noqa: E402,F401 (a fixture)
from lanes import pytest_collection_modifyitems  # noqa: E402,F401 (a pytest hook)
from timing import (  # noqa: E402,F401 (pytest hooks)
    pytest_runtest_logreport,
    pytest_runtest_makereport,
    pytest_runtest_protocol,
    pytest_terminal_summary,
)
