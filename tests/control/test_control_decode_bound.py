"""The benchmark page and API show the decode bound, its bandwidth source, and a wrong bound as wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from control_helpers import sign_in
from fastapi.testclient import TestClient

from animaflow_control.settings import Settings


def write(state_dir: Path, backend: str, bound: dict[str, Any]) -> None:
    path = state_dir / "benchmarks" / "r1" / f"local-{backend}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "schema_version": 1,
        "target": {"backend": backend, "version": "b1", "model": "qwen2.5-7b"},
        "host": {
            "memory_bandwidth_gbps": bound.get("memory_bandwidth_gbps"),
            "memory_bandwidth_source": None,
        },
        "levels": [{"concurrency": 1, "output_tokens_per_s": 172.0, "ttft_ms": {"p95": 30.0}, "failed": 0}],
        "goodput": {"concurrency": 1},
        "decode_bound": bound,
        "finished_at": "2026-01-01T00:00:00Z",
    }
    path.write_text(json.dumps(data))


def test_decode_bound_on_the_api_and_the_page(
    settings: Settings, client: TestClient, admin: dict[str, str]
) -> None:
    write(
        settings.state_dir,
        "vllm",
        {
            "memory_bandwidth_gbps": 3350.0,
            "source": "gpu_datasheet",
            "tokens_per_s_upper": 680.8,
            "achieved_fraction": 0.2536,
            "warning": None,
        },
    )
    write(
        settings.state_dir,
        "llamacpp",
        {
            "memory_bandwidth_gbps": 13.5,
            "source": "measured_cpu_read",
            "tokens_per_s_upper": 2.75,
            "achieved_fraction": None,
            "warning": "the bound is wrong, not the server: one stream decoded 172 tokens/s, 62.84 x the bound",
        },
    )
    # Written before the benchmark refused fractions above 1: still never a percentage.
    write(settings.state_dir, "ollama", {"tokens_per_s_upper": 3.64, "achieved_fraction": 47.31})
    listing = client.get("/api/benchmarks", headers=admin).json()
    bounds = {result["backend"]: result["decode_bound"] for result in listing["results"]}
    assert bounds["vllm"]["source"] == "gpu_datasheet" and bounds["vllm"]["achieved_fraction"] == 0.2536
    assert (
        bounds["llamacpp"]["achieved_fraction"] is None and "bound is wrong" in bounds["llamacpp"]["warning"]
    )
    assert (
        bounds["ollama"]["achieved_fraction"] is None and "47.31 x its bound" in bounds["ollama"]["warning"]
    )

    sign_in(client, admin)
    page = client.get("/benchmarks").text
    assert "680.8 tok/s" in page and "3350 GB/s, gpu_datasheet" in page and "single stream 25.4 %" in page
    assert page.count("bound wrong</strong>") == 2
    assert "4731" not in page
