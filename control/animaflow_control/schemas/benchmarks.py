"""Benchmark results (llm_benchmark, schema_version 1 or 2) and the backend recommendation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from animaflow_control.schemas.tunings import Tuning


class Level(BaseModel):
    concurrency: int
    output_tokens_per_s: float | None
    ttft_p95_ms: float | None
    failed: int | None = None
    # Requests per second that met every SLO (null in schema_version 1 results).
    goodput_request_per_s: float | None = None
    # structured workload: replies that did not parse or validate against the schema.
    invalid_replies: int | None = None
    # shared_prefix workload: p95 TTFT of the control requests without a shared prefix.
    ttft_p95_unique_prefix_ms: float | None = None


class DecodeBound(BaseModel):
    """Single-stream decode against bandwidth / model bytes. achieved_fraction is null with a
    warning when the stream beat the bound: the bound is then wrong, not the server."""

    memory_bandwidth_gbps: float | None = None
    source: str | None = None
    tokens_per_s_upper: float | None = None
    achieved_fraction: float | None = None
    warning: str | None = None


class BenchmarkResult(BaseModel):
    run_id: str
    host: str
    backend: str
    version: str | None
    model: str | None
    finished_at: str | None
    # chat, structured or shared_prefix (schema_version 1 results: chat).
    workload: str = "chat"
    model_format: str | None = None
    quantisation: str | None = None
    # The best level's requests per second inside every SLO (null in schema_version 1 results), and
    # the highest concurrency whose p95s met the SLOs with no failure.
    goodput_request_per_s: float | None = None
    max_concurrency_within_slo: int | None = None
    levels: list[Level]
    decode_bound: DecodeBound | None = None


class BenchmarkList(BaseModel):
    results: list[BenchmarkResult]
    skipped_files: list[str]
    # llama.cpp sweeps (-e benchmark_tune=true), newest first.
    tunings: list[Tuning] = []


class NodeRecommendation(BaseModel):
    choice: str | None
    ranking: list[dict[str, Any]]
    reasons: list[str]
    # The benchmark workload whose results decided, and what was compared (backend, model, format,
    # quantisation, quality).
    workload: str | None = None
    compared: list[dict[str, Any]] = []


class Recommendation(BaseModel):
    available: bool
    message: str
    nodes: dict[str, NodeRecommendation] = {}
    nodes_without_facts: list[str] = []
