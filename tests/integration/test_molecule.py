"""Each Molecule scenario is one test here, so `make test` ends with one pytest summary of everything.

The scenario's own testinfra results are in its log; the assertion shows the log's tail on failure.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# llamacpp first: it fills the controller's llama-server build cache that benchmark and ollama reuse.
FIRST = ["node", "llamacpp"]
SCENARIOS = FIRST + sorted(
    p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml") if p.parent.name not in FIRST
)
LOGS = ROOT / ".cache" / "logs"


@pytest.mark.molecule
@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario: str) -> None:
    if shutil.which("molecule") is None:
        pytest.fail("molecule is not on PATH: run `make venv` first")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.fail("dockerd is not answering: `bash tests/infra/dockerd.sh start` (make test does it)")
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"molecule-{scenario}.log"
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1")
    with log.open("w") as out:
        proc = subprocess.run(
            ["molecule", "test", "-s", scenario],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-80:])
    assert proc.returncode == 0, f"molecule test -s {scenario} failed (full log: {log}):\n{tail}"
