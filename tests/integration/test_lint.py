"""Lint gates as tests: ruff (code and format), ansible-lint's production profile, and vermin: what
runs on the nodes (plugins/) must run on the oldest Python of the node OSes roles/node accepts."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# The system Python (/usr/bin/python3, what Ansible's interpreter discovery picks) of each node OS
# release, by ansible_facts distribution and major version.
NODE_OS_PYTHON: dict[str, dict[str, str]] = {
    "Debian": {"11": "3.9", "12": "3.11", "13": "3.13"},
    "Ubuntu": {"20": "3.8", "22": "3.10", "24": "3.12"},
    "RedHat": {"8": "3.6", "9": "3.9", "10": "3.12"},
    "Rocky": {"8": "3.6", "9": "3.9", "10": "3.12"},
    "AlmaLinux": {"8": "3.6", "9": "3.9", "10": "3.12"},
}


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


def filters() -> list[str]:
    """Every filter the collection ships: the names each filter plugin file's FilterModule returns."""
    names = []
    for path in sorted((ROOT / "plugins" / "filter").glob("*.py")):
        names += re.findall(r'"(\w+)": \w+', path.read_text().split("def filters", 1)[-1])
    return sorted(names)


@pytest.mark.parametrize("kind", ["module", "filter"])
def test_plugin_docs_render(kind: str) -> None:
    # A YAML slip in DOCUMENTATION ("text: more" in a plain scalar) only shows here: ansible-doc fails.
    found = (
        sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
        if kind == "module"
        else filters()
    )
    assert found, f"no {kind}s found"
    for name in found:
        proc = subprocess.run(
            ["ansible-doc", "-t", kind, f"animaflow.inference.{name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0 and "EXAMPLES" in proc.stdout, (
            f"ansible-doc -t {kind} {name}: {proc.stderr}"
        )


def oldest_node_python() -> str:
    """The oldest system Python among roles/node's animaflow_supported_os."""
    defaults = yaml.safe_load((ROOT / "roles" / "node" / "defaults" / "main.yml").read_text())
    versions = []
    for distribution, releases in defaults["animaflow_supported_os"].items():
        for release in releases:
            python = NODE_OS_PYTHON.get(distribution, {}).get(str(release))
            assert python, (
                f"{distribution} {release} is a supported node OS but its system Python is unknown: "
                "add it to NODE_OS_PYTHON in tests/integration/test_lint.py"
            )
            versions.append(python)
    return min(versions, key=lambda version: tuple(int(part) for part in version.split(".")))


def test_make_lint_checks_the_oldest_node_python() -> None:
    oldest = oldest_node_python()
    declared = re.search(r"^NODE_PYTHON_MIN := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert declared and declared.group(1) == oldest, (
        f"the oldest supported node runs Python {oldest}: set NODE_PYTHON_MIN := {oldest} in the Makefile"
    )


def test_plugins_run_on_the_oldest_node_python() -> None:
    """Modules, module_utils and filters use nothing newer than the oldest node's Python."""
    target = oldest_node_python()
    command = ["vermin", "--no-tips", "--violations", "--eval-annotations", f"-t={target}-", "plugins/"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(command)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
