"""The benchmark page and API show llama.cpp sweeps (-e benchmark_tune=true): derived vs best and the
suggested host_vars; the sweep's file is not listed as a skipped benchmark result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from control_helpers import sign_in
from fastapi.testclient import TestClient

from animaflow_control.settings import Settings
from ansible_collections.animaflow.inference.plugins.module_utils import llamacpp_tune as lt

DERIVED = {
    "threads": 1,
    "batch": 2048,
    "ubatch": 512,
    "parallel": 4,
    "ctx_per_slot": 4096,
    "load_mode": "mmap",
    "build": "avx512",
}


class Launcher:
    kind = "process"

    def __init__(self) -> None:
        self.threads: dict[str, str] = {}

    def start(self, name: str, binary: str, env: dict[str, str], secrets: Any, base_url: str) -> lt.Server:
        self.threads[base_url] = env["LLAMA_ARG_THREADS"]
        return lt.Server(name, base_url, "")

    def ready(self, server: lt.Server, timeout_s: float) -> None:
        pass

    def stop(self, server: lt.Server) -> None:
        pass

    def close(self) -> None:
        pass


def sweep() -> dict[str, Any]:
    """A sweep in which 2 threads decode 1.5x faster than derived and serve 0.9x the throughput."""
    launcher = Launcher()

    def measure(url: str, metric: str, slots: int = 1) -> dict[str, Any]:
        fast = launcher.threads[url] == "2"
        value = {"decode": 75.0 if fast else 50.0, "throughput": 90.0 if fast else 100.0, "warmup": 1.0}[
            metric
        ]
        return {"value": value, "failed_requests": 0, "error": None}

    config = lt.TuneConfig(
        binaries={"avx512": "/x"},
        base_env={},
        derived=DERIVED,
        model="m",
        vcpus=2,
        axes=["threads"],
        rounds=2,
    )
    return lt.tune(config, launcher, measure)


def test_sweeps_on_the_api_and_the_page(
    settings: Settings, client: TestClient, admin: dict[str, str]
) -> None:
    run = settings.state_dir / "benchmarks" / "r7"
    run.mkdir(parents=True)
    result = sweep()
    (run / "node-1-llamacpp-tune.json").write_text(json.dumps(result))
    (run / "node-1-llamacpp-tuned.yml").write_text(lt.render_suggestion(result, "node-1", "r7"))
    listing = client.get("/api/benchmarks", headers=admin).json()
    assert listing["skipped_files"] == []  # the sweep is not a result of the wrong schema
    (tuning,) = listing["tunings"]
    assert tuning["run_id"] == "r7" and tuning["host"] == "node-1"
    assert tuning["derived_vs_best"] == {"decode": round(1 / 1.5, 4), "throughput": 1.0}
    assert tuning["meets_target"] is False
    assert tuning["best"] == {"decode": "threads=2", "throughput": "derived"}
    assert tuning["winner"] == "threads=2" and tuning["suggestion"] == {"llamacpp_threads": 2}
    assert tuning["suggestion_file"] == str(Path("benchmarks") / "r7" / "node-1-llamacpp-tuned.yml")

    sign_in(client, admin)
    page = client.get("/benchmarks").text
    section = page.split('id="tuning"', 1)[1]
    assert "66.7 %" in section and "best: threads=2" in section
    assert "llamacpp_threads: 2" in section and "node-1-llamacpp-tuned.yml" in section


def test_no_sweep_yet_says_how_to_run_one(client: TestClient, admin: dict[str, str]) -> None:
    sign_in(client, admin)
    page = client.get("/benchmarks").text
    assert "-e benchmark_tune=true" in page.split('id="tuning"', 1)[1]
