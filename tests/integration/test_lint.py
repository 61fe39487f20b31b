"""Lint gates as tests: ruff (code and format) and ansible-lint's production profile."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["ansible-lint", "--offline"],
    ],
    ids=["ruff-check", "ruff-format", "ansible-lint"],
)
def test_lint(command: list[str]) -> None:
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(command)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"


def test_module_docs_render() -> None:
    modules = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    assert modules, "no modules found"
    for name in modules:
        proc = subprocess.run(
            ["ansible-doc", f"animaflow.inference.{name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0 and "EXAMPLES" in proc.stdout, f"ansible-doc {name}: {proc.stderr}"
