"""Time per stage of `make test`, printed just before pytest's summary line.

The set-up stages (venv, dockerd, node image, test mirror) are timed by tests/infra/run-tests.sh into
the file named by ANIMAFLOW_STAGES; the test stages are summed here from each test's setup, call and
teardown. A Molecule scenario's test attaches its actions' times (user property `molecule_actions`),
printed under it, so a slow scenario shows which of its steps is slow.

Beside each stage's time goes its CPU time: the pytest worker's own and that of the processes it ran
(ansible-playbook, molecule, llama-server on the host), counted as they end. Processes in the node
containers belong to dockerd, not to the test, so they count only in the machine's total, read from
/proc/stat over the whole run: on 2 cores the suite cannot finish faster than its CPU time / 2.
"""

from __future__ import annotations

import os
import resource
import time
from collections import defaultdict
from pathlib import Path

import pytest

_STARTED = time.monotonic()
_STAGE_SECONDS: dict[str, float] = defaultdict(float)
_STAGE_TESTS: dict[str, int] = defaultdict(int)
_ACTIONS: dict[str, list[tuple[str, float]]] = {}
_STAGE_CPU: dict[str, float] = defaultdict(float)
_TEST_CPU: dict[str, float] = defaultdict(float)
MOST_CPU = 12  # the tests listed by CPU time under the stages


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat's first line."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


_MACHINE_AT_START = _machine_cpu()
_CPU_MARK = pytest.StashKey[float]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> None:
    item.stash[_CPU_MARK] = _cpu_seconds()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item):
    outcome = yield
    now = _cpu_seconds()
    # A plain attribute: pytest-xdist sends a report's attributes from the worker to the controller.
    outcome.get_result().cpu_seconds = now - item.stash.get(_CPU_MARK, now)
    item.stash[_CPU_MARK] = now


def _stage(report: pytest.TestReport) -> str:
    path = report.nodeid.split("::", 1)[0]
    if "test_molecule.py" in path and "[" in report.nodeid:
        return "molecule " + report.nodeid.rsplit("[", 1)[1].rstrip("]")
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else path


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    stage = _stage(report)
    _STAGE_SECONDS[stage] += report.duration
    _STAGE_CPU[stage] += getattr(report, "cpu_seconds", 0.0)
    _TEST_CPU[report.nodeid] += getattr(report, "cpu_seconds", 0.0)
    if report.when == "call":
        _STAGE_TESTS[stage] += 1
    for name, value in report.user_properties:
        if name == "molecule_actions":
            _ACTIONS[stage] = list(value)


def _setup_stages() -> list[tuple[str, float, float | None]]:
    """(name, seconds, CPU seconds where the stage measured them) from run-tests.sh's stages file."""
    path = os.environ.get("ANIMAFLOW_STAGES")
    if not path or not Path(path).is_file():
        return []
    stages = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        name, millis, *cpu = line.split("\t")
        if millis.isdigit():
            cpu_s = int(cpu[0]) / 1000 if cpu and cpu[0].isdigit() else None
            stages.append((name, int(millis) / 1000, cpu_s))
    return stages


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60):3d} min {seconds % 60:4.1f} s"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _STAGE_SECONDS:
        return
    write = terminalreporter.write_line
    # With xdist the test stages overlap: each is the sum of its tests' times, the total is wall time.
    terminalreporter.section("time per stage (tests: summed over the workers; total: wall clock)")
    write(f"{'':<34} {'time':>14}   {'CPU':>14}")
    setup = _setup_stages()
    for name, seconds, cpu in setup:
        write(f"{name:<34} {_clock(seconds)}" + (f"   {_clock(cpu)}" if cpu is not None else ""))
    for stage in sorted(_STAGE_SECONDS, key=lambda s: (s.startswith("molecule"), s)):
        label = f"{stage} ({_STAGE_TESTS[stage]} tests)" if not stage.startswith("molecule") else stage
        write(f"{label:<34} {_clock(_STAGE_SECONDS[stage])}   {_clock(_STAGE_CPU[stage])}")
        for action, seconds in _ACTIONS.get(stage, []):
            write(f"    {action:<30} {_clock(seconds)}")
    write(
        "most CPU (the test's processes; setup and teardown included, so a fixture counts where it starts):"
    )
    for nodeid, seconds in sorted(_TEST_CPU.items(), key=lambda kv: -kv[1])[:MOST_CPU]:
        write(f"    {_clock(seconds)}  {nodeid}")
    pytest_wall = time.monotonic() - _STARTED
    # A stage run beside pytest (the llama.cpp builds) overlaps it: it is not added to the total.
    total = sum(seconds for name, seconds, _ in setup if "beside pytest" not in name) + pytest_wall
    write(f"{'total (set-up and pytest)':<34} {_clock(total)}")
    busy, whole = (end - start for end, start in zip(_machine_cpu(), _MACHINE_AT_START, strict=True))
    if whole > 0:
        cores = os.cpu_count() or 1
        write(
            f"{'machine CPU during pytest':<34} {_clock(busy)}   "
            f"({busy / pytest_wall:.2f} of {cores} cores busy on average, {100 * busy / whole:.0f} %)"
        )
