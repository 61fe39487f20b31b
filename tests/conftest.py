"""Shared by every test directory: tests/ on sys.path, for the helpers kept here (playbook_runner)."""

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
