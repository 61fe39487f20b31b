"""Benchmark results (llm_benchmark, schema_version 1) and the backend recommendation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from animaflow_control.schemas.tunings import Tuning


class Level(BaseModel):
    concurrency: int
    output_tokens_per_s: float | None
    ttft_p95_ms: float | None
    failed: int | None = None


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
    goodput_concurrency: int | None
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


class Recommendation(BaseModel):
    available: bool
    message: str
    nodes: dict[str, NodeRecommendation] = {}
    nodes_without_facts: list[str] = []
