"""How `make test` spreads its tests over pytest-xdist workers (run-tests.sh: -n 4 --dist loadgroup).

Most of a Molecule scenario's time is spent waiting on its nodes (systemd, health checks, docker exec),
so scenarios run side by side; each has its own containers and loopback addresses. A lane is a chain
of long tests that one worker runs in order. The llama.cpp builds run beside pytest (tests/builds.py),
so the order is: the lanes that need no llama-server, then the short tests (they keep every worker
busy while the builds run), then the lanes that wait for the builds, in the order the builds land,
so that each starts as soon as it can. Without xdist the marks do nothing and only the order applies.

Known gap (found at the end of the last stop, not yet changed): this hook runs after pytest-xdist's own
collection hook has read the xdist_group marks, so the marks do not take effect and a lane's tests are
scheduled one by one, in this order, on any worker. Making it run first (tryfirst) does group them, but
xdist then queues the next unit behind a worker's lane (it tops up any worker with 2 or fewer pending
tests), which would put a build lane behind another; that needs measuring before it changes.
"""

from __future__ import annotations

import pytest

MOLECULE = "tests/integration/test_molecule.py::test_scenario"
# (lane, its tests in order, needs the llama.cpp builds). The lanes that wait for builds come in the
# order the builds land (tests/infra/llamacpp-builds.sh: oldest release first): llamacpp and benchmark
# start on the oldest, ollama, the demo and the host llama-server tests need the newest.
LANES: list[tuple[str, list[str], bool]] = [
    ("node", [f"{MOLECULE}[node]", f"{MOLECULE}[units]"], False),
    ("lint", ["tests/integration/test_lint.py"], False),
    ("llamacpp", [f"{MOLECULE}[llamacpp]"], True),
    ("benchmark", [f"{MOLECULE}[benchmark]", "tests/control/test_control_container_node.py"], True),
    ("gateway", [f"{MOLECULE}[gateway]"], True),
    ("ollama", [f"{MOLECULE}[ollama]"], True),
    ("demo", ["tests/integration/test_demo.py"], True),
    (
        "host-llama-server",
        ["tests/integration/test_bench_real_server.py", "tests/integration/test_llamacpp_tune_sweep.py"],
        True,
    ),
]
SHORT_TESTS = 1_000  # the rank of every test outside the lanes: between the two kinds of lane


def _rank(nodeid: str) -> tuple[int, str | None]:
    for lane_rank, (lane, prefixes, needs_builds) in enumerate(LANES):
        for position, prefix in enumerate(prefixes):
            if nodeid == prefix or nodeid.startswith((prefix + "::", prefix + "[")):
                return (2 * SHORT_TESTS if needs_builds else 0) + lane_rank * 10 + position, lane
    return SHORT_TESTS, None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    ranks = {}
    for item in items:
        rank, lane = _rank(item.nodeid)
        if lane is not None:
            item.add_marker(pytest.mark.xdist_group(lane))
        ranks[item.nodeid] = rank
    items.sort(key=lambda item: ranks[item.nodeid])  # stable: the collection order within a rank
