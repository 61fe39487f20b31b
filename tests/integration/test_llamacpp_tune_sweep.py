"""The llama.cpp sweep against a real llama-server: the llamacpp_tune module as Ansible runs it (on the
oldest node Python when this machine has it) and benchmarks/llamacpp_tune.py, each with the tiny model,
two candidates, one round and a few requests on 127.0.0.102/.103. They check that the sweep runs,
measures every visit and writes a suggestion; how fast anything was is never judged here.

llama-server comes from the controller build cache (as in test_bench_real_server.py), else it is built
once from the mirror's source tarball into .cache/test-builds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from llama_build import build_llama_server, known_versions, mirror_tarball, runs  # tests/infra

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "unit"))  # the module runner the unit tests use
from module_runner import node_python, run_through_ansible  # noqa: E402

MODEL = REPO / ".cache" / "mirror" / "models" / "animaflow-tiny.gguf"
CACHE = Path(os.environ.get("ANIMAFLOW_CACHE_DIR") or REPO / ".cache" / "controller")


def _cached_binary(version: str) -> Path | None:
    for binary in sorted(CACHE.glob(f"llamacpp/builds/{version}-cpu-*/llama-server")):
        if runs(binary):
            return binary
    return None


@pytest.fixture(scope="module")
def llama_server(request: pytest.FixtureRequest) -> Path:
    version = known_versions()[-1]
    with contextlib.suppress(pytest.FixtureLookupError):  # make test's shared builds, where they run
        request.getfixturevalue("llamacpp_builds")(version)
    binary = _cached_binary(version)
    if binary is None:
        tarball = mirror_tarball(version)
        if not tarball.exists() or shutil.which("cmake") is None:
            pytest.skip(
                "no llama-server in the controller cache, and no mirror tarball or cmake to build one"
            )
        binary = build_llama_server(tarball, REPO / ".cache" / "test-builds" / version)
    if not MODEL.exists():
        pytest.skip(f"{MODEL} is not in the mirror (tests/infra/prepare-mirror.py puts it there)")
    return binary


def _processes_running(argv0: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "cmdline").read_bytes().split(b"\0")[0].decode() == argv0:
                    found.append(int(entry.name))
    return found


def test_the_module_sweeps_two_candidates_and_writes_a_suggestion(tmp_path: Path, llama_server: Path) -> None:
    """A node's layout in a temporary directory: install with its marker, the role's two env files."""
    install = tmp_path / "llamacpp" / "current"
    (install / "bin").mkdir(parents=True)
    binary = install / "bin" / "llama-server"
    shutil.copy2(llama_server, binary)
    (install / ".animaflow-installed").write_text(json.dumps({"build_key": "b11312-cpu-x86_64-avx512"}))
    env_file, secrets_file = tmp_path / "llamacpp.env", tmp_path / "llamacpp.secrets.env"
    settings = {
        "LLAMA_ARG_HOST": "127.0.0.102",
        "LLAMA_ARG_PORT": "8000",
        "LLAMA_ARG_MODEL": str(MODEL),
        "LLAMA_ARG_ALIAS": "tiny",
        "LLAMA_ARG_THREADS": "1",
        "LLAMA_ARG_N_GPU_LAYERS": "0",
        "LLAMA_ARG_N_PARALLEL": "2",
        "LLAMA_ARG_CTX_SIZE": "512",
        "LLAMA_ARG_UI": "0",
    }
    env_file.write_text("# Settings\n" + "".join(f'{key}="{value}"\n' for key, value in settings.items()))
    # The candidates must get the key from here: without it every request would fail with 401.
    secrets_file.write_text('LLAMA_API_KEY="tune-test-key"\n')
    output = tmp_path / "node" / "node-t-llamacpp-tune.json"
    args: dict[str, Any] = {
        "install_dir": str(install),
        "env_file": str(env_file),
        "secrets_file": str(secrets_file),
        "launcher": "process",
        "candidates": [{"threads": 2}],
        "rounds": 1,
        "confirm": False,
        "requests": 2,
        "input_tokens": 16,
        "output_tokens": 8,
        "host_name": "node-t",
        "run_id": "it",
        "output_path": str(output),
    }
    result = run_through_ansible("llamacpp_tune", args, python=node_python(), timeout=600)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    tune = result["tune"]
    assert tune["kind"] == "llamacpp_tune" and tune["node"]["launcher"] == "process"
    assert tune["derived"] == {
        "threads": 1,
        "batch": 2048,
        "ubatch": 512,
        "parallel": 2,
        "ctx_per_slot": 256,
        "load_mode": "mmap",
        "build": "avx512",
    }
    (block,) = tune["blocks"]  # one round, one candidate, measured beside the derived server
    assert block["label"] == "threads=2" and not block.get("error"), block
    for metric in ("decode", "throughput"):
        assert len(block[metric]) == len(block[f"derived_{metric}"]) == 2 and block[f"ratio_{metric}"] > 0
    rows = tune["phases"][0]
    assert [row["label"] for row in rows] == ["derived", "threads=2"]
    assert all(row["score_decode"] and row["score_throughput"] for row in rows)
    assert set(tune["derived_vs_best"]) == {"decode", "throughput"}
    assert json.loads(output.read_text()) == tune

    suggestion = result["suggestion_yaml"]
    assert suggestion.startswith("# llama.cpp settings suggested for node-t by the benchmark run it")
    assert set(yaml.safe_load(suggestion) or {}) <= {"llamacpp_threads"}
    assert "derived / best single-stream decode" in result["table"]
    # Every candidate was stopped.
    assert _processes_running(str(binary)) == []


def test_the_benchmark_script_prints_derived_against_best(tmp_path: Path, llama_server: Path) -> None:
    suggestion = tmp_path / "tuned.yml"
    command = [sys.executable, str(REPO / "benchmarks" / "llamacpp_tune.py"), "--model", str(MODEL)]
    command += ["--model-context", "256", "--axes", "threads", "--rounds", "1", "--requests", "2"]
    command += ["--input-tokens", "16", "--output-tokens", "8", "--host", "127.0.0.103", "--no-confirm"]
    command += ["--suggestion", str(suggestion)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "ANIMAFLOW_CACHE_DIR": str(CACHE)},
    )
    if done.returncode != 0 and "build it first" in done.stderr:
        pytest.skip(f"the role's derived build for this machine is not cached: {done.stderr.strip()}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("uptime: ") == 2
    assert "derived / best single-stream decode: " in done.stdout
    assert "derived / best c=4 throughput: " in done.stdout
    text = suggestion.read_text()
    assert text.startswith("# llama.cpp settings suggested for ")
    assert set(yaml.safe_load(text) or {}) <= {"llamacpp_threads"}
