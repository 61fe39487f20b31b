"""Each Molecule scenario is one test here, so `make test` ends with one pytest summary of everything.

The scenario's own testinfra results are in its log; the assertion shows the log's tail on failure.
"""

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from llama_build import known_versions  # tests/infra, put on sys.path by tests/integration/conftest.py

ROOT = Path(__file__).resolve().parents[2]
# The order without xdist; with it, tests/lanes.py decides.
FIRST = ["node", "llamacpp"]
SCENARIOS = FIRST + sorted(
    p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml") if p.parent.name not in FIRST
)
LOGS = ROOT / ".cache" / "logs"
# The llama.cpp releases a scenario needs before it starts, from the run's shared builds
# (tests/builds.py); a scenario not listed runs no llama-server. molecule/llamacpp upgrades to the
# newest release too: its side_effect.yml waits for that build itself, so converge need not.
OLDEST, NEWEST = known_versions()[0], known_versions()[-1]
BUILDS = {"llamacpp": (OLDEST,), "benchmark": (OLDEST,), "gateway": (OLDEST,), "ollama": (NEWEST,)}
# Molecule's own lines around each action: "INFO     [llamacpp > converge] Executing".
ACTION = re.compile(r"^INFO\s+\[[^ ]+ > (\w+)\] (Executing|Executed)")


def run_logged(command: list[str], log: Path, env: dict[str, str]) -> tuple[int, list[tuple[str, float]]]:
    """Run Molecule with its output in the log; return its exit status and each action's seconds."""
    actions: list[tuple[str, float]] = []
    started: dict[str, float] = {}
    with (
        log.open("w") as out,
        subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            match = ACTION.match(line)
            if match and match[2] == "Executing":
                started.setdefault(match[1], time.monotonic())
            elif match and match[1] in started:
                actions.append((match[1], time.monotonic() - started.pop(match[1])))
    return proc.returncode, actions


@pytest.mark.molecule
@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(
    scenario: str, record_property: Callable[[str, object], None], request: pytest.FixtureRequest
) -> None:
    if shutil.which("molecule") is None:
        pytest.fail("molecule is not on PATH: run `make venv` first")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.fail("dockerd is not answering: `bash tests/infra/dockerd.sh start` (make test does it)")
    if scenario in BUILDS:
        request.getfixturevalue("llamacpp_builds")(*BUILDS[scenario])
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"molecule-{scenario}.log"
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1")
    returncode, actions = run_logged(["molecule", "test", "-s", scenario], log, env)
    record_property("molecule_actions", actions)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-80:])
    assert returncode == 0, f"molecule test -s {scenario} failed (full log: {log}):\n{tail}"
