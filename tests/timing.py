"""Time per stage of `make test`, printed just before pytest's summary line.

The set-up stages (venv, dockerd, node image, test mirror) are timed by tests/infra/run-tests.sh into
the file named by ANIMAFLOW_STAGES; the test stages are summed here from each test's setup, call and
teardown. A Molecule scenario's test attaches its actions' times (user property `molecule_actions`),
printed under it, so a slow scenario shows which of its steps is slow.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

import pytest

_STARTED = time.monotonic()
_STAGE_SECONDS: dict[str, float] = defaultdict(float)
_STAGE_TESTS: dict[str, int] = defaultdict(int)
_ACTIONS: dict[str, list[tuple[str, float]]] = {}


def _stage(report: pytest.TestReport) -> str:
    path = report.nodeid.split("::", 1)[0]
    if "test_molecule.py" in path and "[" in report.nodeid:
        return "molecule " + report.nodeid.rsplit("[", 1)[1].rstrip("]")
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else path


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    stage = _stage(report)
    _STAGE_SECONDS[stage] += report.duration
    if report.when == "call":
        _STAGE_TESTS[stage] += 1
    for name, value in report.user_properties:
        if name == "molecule_actions":
            _ACTIONS[stage] = list(value)


def _setup_stages() -> list[tuple[str, float]]:
    path = os.environ.get("ANIMAFLOW_STAGES")
    if not path or not Path(path).is_file():
        return []
    stages = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        name, _, millis = line.partition("\t")
        if millis.isdigit():
            stages.append((name, int(millis) / 1000))
    return stages


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60):3d} min {seconds % 60:4.1f} s"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _STAGE_SECONDS:
        return
    write = terminalreporter.write_line
    # With xdist the test stages overlap: each is the sum of its tests' times, the total is wall time.
    terminalreporter.section("time per stage (tests: summed over the workers; total: wall clock)")
    setup = _setup_stages()
    for name, seconds in setup:
        write(f"{name:<34} {_clock(seconds)}")
    for stage in sorted(_STAGE_SECONDS, key=lambda s: (s.startswith("molecule"), s)):
        label = f"{stage} ({_STAGE_TESTS[stage]} tests)" if not stage.startswith("molecule") else stage
        write(f"{label:<34} {_clock(_STAGE_SECONDS[stage])}")
        for action, seconds in _ACTIONS.get(stage, []):
            write(f"    {action:<30} {_clock(seconds)}")
    total = sum(seconds for _, seconds in setup) + time.monotonic() - _STARTED
    write(f"{'total (set-up and pytest)':<34} {_clock(total)}")
