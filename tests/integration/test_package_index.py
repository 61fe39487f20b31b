"""The vllm and sglang versions the roles pin, and their wheel-variant tables, match the package index.

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
DEFAULTS = {
    p: yaml.safe_load((ROOT / "roles" / p / "defaults" / "main.yml").read_text()) for p in ("vllm", "sglang")
}
PINS = {p: d[f"{p}_version"] for p, d in DEFAULTS.items()}
# The roles' wheel-variant tables: variant -> {min_driver, index_urls, versions}.
VARIANTS = {p: d[f"{p}_wheel_variants"] for p, d in DEFAULTS.items()}
# PyPI serves the variant without extra indexes (the default build); the others need their own index.
PYPI_VARIANT = {p: next(k for k, v in table.items() if not v["index_urls"]) for p, table in VARIANTS.items()}


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
@pytest.mark.parametrize("package", sorted(PINS))
def test_every_version_in_the_variant_table_is_on_the_index(package):
    listed = {v for variant in VARIANTS[package].values() for v in variant["versions"]}
    missing = sorted(listed - set(available(package)))
    assert not missing, f"{package} {missing} are in {package}_wheel_variants but not on the index"


def newest_of_each_variant() -> list[str]:
    return sorted({f"{p}=={table[k]['versions'][-1]}" for p, table in VARIANTS.items() for k in table})


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec", sorted({f"{p}=={v}" for p, v in PINS.items()} | set(newest_of_each_variant()))
)
def test_pinned_wheel_installs_on_the_nodes_python(spec, tmp_path):
    item = metadata(spec, tmp_path)
    requires = item["metadata"].get("requires_python") or ""
    from packaging.specifiers import SpecifierSet

    node = ".".join(map(str, NODE_PYTHON))
    assert node in SpecifierSet(requires), f"{spec} requires Python {requires}; Debian 12 nodes have {node}"
    assert item["download_info"]["url"].endswith(".whl"), "no wheel: pip would build from source on the node"
    torch = [d for d in item["metadata"].get("requires_dist", []) if d.startswith("torch==")]
    assert torch, f"{spec} no longer pins torch: the wheel-variant logic in the role needs a look"


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec", [f"{p}=={v}" for p, table in sorted(VARIANTS.items()) for v in table[PYPI_VARIANT[p]]["versions"]]
)
def test_the_pypi_build_of_each_listed_version_is_cuda_13(spec, tmp_path):
    """The table says PyPI's build of these versions is cu130 (driver 580+): their requirements are CUDA 13's."""
    requires = metadata(spec, tmp_path)["metadata"].get("requires_dist", [])
    cuda = [d for d in requires if "extra ==" not in d and ("[cu13]" in d or "-cu13" in d)]
    assert cuda, f"{spec} on PyPI pulls no CUDA 13 package: is its default build still cu130? {requires}"
    assert not [d for d in requires if "extra ==" not in d and ("[cu12]" in d or "-cu12" in d)], requires
