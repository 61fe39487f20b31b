"""Health, metrics, the OpenAPI docs (served without a CDN) and the benchmark and recommendation API."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from animaflow_control.settings import Settings


def test_healthz_needs_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok", "active_runs": 0}


def test_metrics_in_prometheus_text(client: TestClient, admin: dict[str, str]) -> None:
    assert client.get("/metrics").status_code == 401
    client.get("/api/nodes", headers=admin)
    text = client.get("/metrics", headers=admin).text
    assert 'animaflow_runs{state="running"} 0' in text
    assert "animaflow_events_stored 0" in text
    assert 'animaflow_http_requests_total{method="GET",route="/api/nodes",status="200"} 1' in text
    assert "# TYPE animaflow_http_requests_total counter" in text


def test_openapi_docs_are_served_from_vendored_files(client: TestClient, admin: dict[str, str]) -> None:
    page = client.get("/docs", headers=admin).text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    assert client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
    schema = client.get("/openapi.json", headers=admin).json()
    assert {"/api/runs", "/api/runs/{run_id}/events", "/api/nodes", "/api/recommendation"} <= set(
        schema["paths"]
    )
    actions = schema["components"]["schemas"]["Action"]["enum"]
    assert "benchmark" in actions and "facts" in actions
    assert set(schema["components"]["schemas"]["Backend"]["enum"]) == {"llamacpp", "ollama", "vllm", "sglang"}


def write_benchmark(
    state_dir: Path,
    run_id: str,
    host: str,
    backend: str,
    levels: list[tuple[int, float, float]],
    goodput: int,
) -> None:
    path = state_dir / "benchmarks" / run_id / f"{host}-{backend}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "target": {"backend": backend, "version": "b1", "model": "tiny"},
                "levels": [
                    {"concurrency": c, "output_tokens_per_s": tps, "ttft_ms": {"p95": ttft}, "failed": 0}
                    for c, tps, ttft in levels
                ],
                "goodput": {"concurrency": goodput, "slo_ttft_ms": 1000, "slo_tpot_ms": 100},
                "finished_at": "2026-01-01T00:00:00Z",
            }
        )
    )


def test_benchmarks_and_recommendation(settings: Settings, client: TestClient, admin: dict[str, str]) -> None:
    no_facts = client.get("/api/recommendation", headers=admin).json()
    assert no_facts["available"] is False and "facts" in no_facts["message"]

    write_benchmark(settings.state_dir, "r1", "local", "llamacpp", [(1, 20.0, 90.0), (4, 60.0, 250.0)], 4)
    write_benchmark(settings.state_dir, "r1", "local", "ollama", [(1, 18.0, 80.0), (4, 30.0, 700.0)], 1)
    (settings.state_dir / "benchmarks" / "r1" / "junk.json").write_text("{}")
    listing = client.get("/api/benchmarks", headers=admin).json()
    assert {(r["host"], r["backend"]) for r in listing["results"]} == {
        ("local", "llamacpp"),
        ("local", "ollama"),
    }
    llamacpp = next(r for r in listing["results"] if r["backend"] == "llamacpp")
    assert llamacpp["levels"][1] == {
        "concurrency": 4,
        "output_tokens_per_s": 60.0,
        "ttft_p95_ms": 250.0,
        "failed": 0,
        "goodput_request_per_s": None,  # schema_version 1: never measured
        "invalid_replies": None,
        "ttft_p95_unique_prefix_ms": None,
    }
    # Schema_version 1's goodput was the concurrency within the SLOs: read as such.
    assert (llamacpp["max_concurrency_within_slo"], llamacpp["goodput_request_per_s"]) == (4, None)
    assert llamacpp["workload"] == "chat"
    assert listing["skipped_files"] == ["benchmarks/r1/junk.json"]

    facts = settings.state_dir / "facts" / "local.json"
    facts.parent.mkdir(parents=True)
    facts.write_text(
        json.dumps(
            {
                "gpu": {"accelerator": "cpu", "vendor": "none", "count": 0, "gpus": []},
                "cpu": {"physical_cores": 2},
                "summary": "local: CPU",
            }
        )
    )
    recommendation = client.get("/api/recommendation", headers=admin).json()
    assert recommendation["available"] is True
    assert recommendation["nodes_without_facts"] == ["local2"]
    local = recommendation["nodes"]["local"]
    assert local["choice"] == "llamacpp"  # measured: more goodput and throughput than ollama
    assert any("Measure" in reason for reason in local["reasons"])


def test_results_are_matched_to_their_node_exactly(
    settings: Settings, client: TestClient, admin: dict[str, str]
) -> None:
    """Node `local` never takes the results of `local-a` (local-a-ollama.json also starts with `local-`)."""
    write_benchmark(settings.state_dir, "r1", "local", "llamacpp", [(1, 20.0, 90.0), (4, 60.0, 250.0)], 4)
    write_benchmark(settings.state_dir, "r1", "local", "ollama", [(1, 18.0, 80.0), (4, 50.0, 300.0)], 4)
    # Far faster Ollama figures from other nodes: one by file name (schema 1), one naming its node (schema 2).
    write_benchmark(settings.state_dir, "r2", "local-a", "ollama", [(1, 90.0, 10.0), (4, 900.0, 20.0)], 64)
    other = settings.state_dir / "benchmarks" / "r3" / "local-b-ollama-structured.json"
    other.parent.mkdir(parents=True)
    data = json.loads((settings.state_dir / "benchmarks" / "r2" / "local-a-ollama.json").read_text())
    data.update(schema_version=2, target={**data["target"], "node": "local-b"}, workload={"kind": "chat"})
    data["goodput"] = {"request_per_s": 99.0, "concurrency": 4}
    other.write_text(json.dumps(data))
    facts = settings.state_dir / "facts" / "local.json"
    facts.parent.mkdir(parents=True)
    facts.write_text(json.dumps({"gpu": {"accelerator": "cpu", "vendor": "none", "count": 0, "gpus": []}}))

    listing = client.get("/api/benchmarks", headers=admin).json()["results"]
    assert {(r["host"], r["backend"]) for r in listing} == {
        ("local", "llamacpp"), ("local", "ollama"), ("local-a", "ollama"), ("local-b", "ollama")
    }  # fmt: skip
    local = client.get("/api/recommendation", headers=admin).json()["nodes"]["local"]
    text = " ".join(local["reasons"] + [reason for row in local["ranking"] for reason in row["reasons"]])
    assert "900.0" not in text and "99.00" not in text
    assert "20.0 against 18.0 at concurrency 1" in text  # local's own figures at its 2 users
