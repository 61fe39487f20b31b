"""animaflow-bench, run as a command against the scheduled SSE stand-in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["conftest_bench"]

REPO = Path(__file__).resolve().parents[2]


def bench_cli(*args: str) -> subprocess.CompletedProcess[str]:
    # As the console script runs it; PYTHONPATH stands in for the venv's editable install and .pth.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "control"), str(REPO / ".collections")])}
    return subprocess.run(
        [sys.executable, "-m", "animaflow_control.bench_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_prints_a_table_and_writes_the_results(sse_server, tmp_path: Path) -> None:
    url = sse_server("--ttfr-ms", "5", "--ttft-ms", "20", "--interval-ms", "10", "--tokens-per-chunk", "2")
    gpu_facts = tmp_path / "gpu.json"
    gpu_facts.write_text(json.dumps({"accelerator": "cpu", "vendor": "none"}))
    output = tmp_path / "runs" / "bench.json"
    done = bench_cli(
        "--base-url", url, "--model", "m", "--concurrency", "1,2", "--requests-per-level", "3",
        "--output-tokens", "9", "--warmup-requests", "1", "--no-ignore-eos", "--memory-bandwidth-gbps", "40",
        "--model-bytes", "4000000000", "--backend", "llamacpp", "--gpu-facts", str(gpu_facts),
        "--output", str(output),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["conc", "ok", "fail"]
    assert lines[1].split()[:3] == ["1", "3", "0"] and lines[2].split()[:3] == ["2", "3", "0"]
    assert "max concurrency within SLO: 2 (p95s, no failures)" in done.stdout
    assert re.search(r"goodput: \d+\.\d\d requests/s inside the SLOs .* at concurrency [12];", done.stdout)
    assert "decode bound: 10.0 tokens/s" in done.stdout
    results = json.loads(output.read_text())
    assert results["workload"]["ignore_eos"] is False and results["workload"]["concurrency"] == [1, 2]
    assert results["host"]["gpu"] == {"accelerator": "cpu", "vendor": "none"}
    assert results["target"]["backend"] == "llamacpp"
    # TTFT = 20 ms by schedule (TTFR 5 ms): the table shows the TTFT median in ms. Its accuracy is
    # test_llm_bench_client's job, which allows for a late server; here only the column is checked.
    assert 19.0 <= float(lines[1].split()[6]) <= 30.0


def test_nothing_completed_exits_1_and_shows_the_errors(sse_server) -> None:
    url = sse_server("--error-every", "1")
    done = bench_cli("--base-url", url, "--model", "m", "--concurrency", "1", "--requests-per-level", "2",
                     "--warmup-requests", "0", "--memory-bandwidth-gbps", "40")  # fmt: skip
    assert done.returncode == 1
    assert "http_500=2" in done.stdout


def test_bad_options_exit_2() -> None:
    assert bench_cli("--base-url", "http://127.0.0.1:1", "--model", "m", "--concurrency", "0").returncode == 2
    assert bench_cli("--base-url", "http://x", "--model", "m", "--concurrency", "a,b").returncode == 2


@pytest.mark.slow
def test_runs_after_pip_install_of_the_control_plane_alone(sse_server, tmp_path: Path) -> None:
    # No `make venv` and so no .pth naming .collections: the package must find the collection itself.
    # --no-deps: the benchmark needs none of the control plane's dependencies, and none of them
    # provides ansible_collections, so this is the stricter case.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [venv / "bin" / "pip", "install", "-q", "--no-deps", "-e", REPO / "control"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    url = sse_server("--ttfr-ms", "5", "--ttft-ms", "20", "--interval-ms", "5")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "ANSIBLE_COLLECTIONS_PATH")
    }
    done = subprocess.run(
        [venv / "bin" / "animaflow-bench", "--base-url", url, "--model", "m", "--concurrency", "1",
         "--requests-per-level", "2", "--warmup-requests", "0", "--memory-bandwidth-gbps", "40"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[:3] == ["1", "2", "0"]
