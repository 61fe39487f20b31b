"""The vllm and sglang versions the roles pin exist on the package index and install on the nodes' Python.

Uses pip itself: `pip index versions` for the list, and `pip install --dry-run --no-deps --report` for
the pinned wheel's metadata (pip reads the PEP 658 metadata file, not the wheel: a few kB instead of
hundreds of MB). Skips with the reason when the index cannot be reached.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NODE_PYTHON = (3, 11)  # Debian 12's python3, what the roles build the virtualenvs with
PINS = {
    "vllm": yaml.safe_load((ROOT / "roles" / "vllm" / "defaults" / "main.yml").read_text())["vllm_version"],
    "sglang": yaml.safe_load((ROOT / "roles" / "sglang" / "defaults" / "main.yml").read_text())[
        "sglang_version"
    ],
}
CUDA12_LANE = yaml.safe_load((ROOT / "roles" / "sglang" / "defaults" / "main.yml").read_text())[
    "sglang_cu129_last_version"
]


def pip(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def available(package: str) -> list[str]:
    try:
        proc = pip("index", "versions", package)
    except subprocess.TimeoutExpired:
        pytest.skip(f"package index did not answer within 180 s for {package}")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("Available versions:")), None)
    if proc.returncode != 0 or line is None:
        pytest.skip(f"package index unreachable (pip index versions {package}: {proc.stderr.strip()[-300:]})")
    return [v.strip() for v in line.split(":", 1)[1].split(",")]


def metadata(spec: str, tmp_path: Path) -> dict:
    report = tmp_path / "report.json"
    proc = pip(
        "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet", "--report", str(report), spec
    )
    if proc.returncode != 0:
        pytest.skip(f"could not resolve {spec} on the index: {proc.stderr.strip()[-300:]}")
    return json.loads(report.read_text())["install"][0]


@pytest.mark.slow
@pytest.mark.parametrize("package", sorted(PINS))
def test_pinned_version_is_on_the_index(package):
    assert PINS[package] in available(package), f"{package}=={PINS[package]} is not on the index"


@pytest.mark.slow
@pytest.mark.parametrize("spec", [f"{p}=={v}" for p, v in sorted(PINS.items())] + [f"sglang=={CUDA12_LANE}"])
def test_pinned_wheel_installs_on_the_nodes_python(spec, tmp_path):
    item = metadata(spec, tmp_path)
    requires = item["metadata"].get("requires_python") or ""
    from packaging.specifiers import SpecifierSet

    node = ".".join(map(str, NODE_PYTHON))
    assert node in SpecifierSet(requires), f"{spec} requires Python {requires}; Debian 12 nodes have {node}"
    assert item["download_info"]["url"].endswith(".whl"), "no wheel: pip would build from source on the node"
    torch = [d for d in item["metadata"].get("requires_dist", []) if d.startswith("torch==")]
    assert torch, f"{spec} no longer pins torch: the wheel-variant logic in the role needs a look"
