"""llm_benchmark as Ansible runs it: documented options match the spec, check mode sends nothing."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from module_runner import OLDEST_NODE_PYTHON, node_python, run_through_ansible
from module_runner import run_module as run_collection_module

from ansible_collections.animaflow.inference.plugins.modules import llm_benchmark

pytest_plugins = ["conftest_bench"]


def run_module(tmp_path: Path, args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    done = run_collection_module("llm_benchmark", tmp_path, {**args, "_ansible_check_mode": check_mode})
    return json.loads(done.stdout)


def test_documented_options_and_defaults_match_the_argument_spec() -> None:
    documented = yaml.safe_load(llm_benchmark.DOCUMENTATION)["options"]
    assert set(documented) == set(llm_benchmark.ARGUMENT_SPEC)
    for name, spec in llm_benchmark.ARGUMENT_SPEC.items():
        assert documented[name].get("default") == spec.get("default"), name
        assert documented[name]["type"] == spec["type"], name
        assert documented[name].get("required", False) == spec.get("required", False), name


def test_check_mode_sends_nothing(tmp_path: Path, sse_server) -> None:
    url = sse_server()
    result = run_module(tmp_path, {"base_url": url, "model": "m"}, check_mode=True)
    assert result["changed"] is False and result["skipped"] is True
    assert "benchmark" not in result
    with urllib.request.urlopen(url + "/_seen", timeout=5) as response:
        assert json.load(response)["requests"] == []


def test_runs_and_writes_the_results_on_the_node(tmp_path: Path, sse_server) -> None:
    url = sse_server("--ttfr-ms", "1", "--ttft-ms", "2", "--interval-ms", "1", "--error-every", "4")
    output = tmp_path / "out" / "bench.json"
    args = {
        "base_url": url,
        "model": "m",
        "api_key": "secret-key",
        "concurrency": [1, 2],
        "requests_per_level": 4,
        "output_tokens": 8,
        "warmup_requests": 0,
        "memory_bandwidth_gbps": 20.0,
        "backend": "llamacpp",
        "gpu": {"accelerator": "cpu"},
        "output_path": str(output),
    }
    result = run_module(tmp_path, args)
    assert result["changed"] is True
    assert json.loads(output.read_text()) == result["benchmark"]
    assert [level["failed"] for level in result["benchmark"]["levels"]] == [1, 1]
    # ansible-core 2.19 returns warnings as structured events; the text is inside.
    assert "concurrency 2: 1 of 4 requests failed (http_500=1)" in json.dumps(result["warnings"])
    assert result["benchmark"]["host"]["gpu"] == {"accelerator": "cpu"}
    assert "secret-key" not in output.read_text()


def test_bad_options_fail_cleanly(tmp_path: Path) -> None:
    result = run_module(tmp_path, {"base_url": "ftp://x", "model": "m"})
    assert result["failed"] is True and "base_url" in result["msg"]


def test_runs_on_the_oldest_node_python_and_counts_timeouts(sse_server) -> None:
    """Ubuntu 22.04 nodes run the module on Python 3.10: it must import there, and a request that
    times out must be one failed request, not the end of the run (3.10's asyncio.wait_for raises
    asyncio.TimeoutError, which is not the builtin TimeoutError before 3.11)."""
    python = node_python()
    if python is None:
        pytest.skip(f"no Python {OLDEST_NODE_PYTHON} on this machine (python{OLDEST_NODE_PYTHON} or pyenv)")
    # Every second request gets its role chunk and then nothing for 60 s.
    url = sse_server(
        "--ttfr-ms", "1", "--ttft-ms", "2", "--interval-ms", "1", "--stall-every", "2", "--stall-s", "60"
    )
    args = {
        "base_url": url,
        "model": "m",
        "concurrency": [1, 2],
        "requests_per_level": 4,
        "output_tokens": 8,
        "warmup_requests": 0,
        "timeout_s": 2.0,
        "memory_bandwidth_gbps": 20.0,
    }
    result = run_through_ansible("llm_benchmark", args, python=python)
    assert not result.get("failed"), json.dumps(result, indent=1)[:3000]
    levels = result["benchmark"]["levels"]
    assert [(level["completed"], level["failed"], level["errors"]) for level in levels] == [
        (2, 2, {"timeout": 2}),
        (2, 2, {"timeout": 2}),
    ]
    assert "not finished within 2.0 s" in levels[0]["error_examples"][0]
    assert "requests failed (timeout=2)" in json.dumps(result["warnings"])
