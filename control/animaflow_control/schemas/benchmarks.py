"""Benchmark results (llm_benchmark, schema_version 1) and the backend recommendation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Level(BaseModel):
    concurrency: int
    output_tokens_per_s: float | None
    ttft_p95_ms: float | None
    failed: int | None = None


class BenchmarkResult(BaseModel):
    run_id: str
    host: str
    backend: str
    version: str | None
    model: str | None
    finished_at: str | None
    goodput_concurrency: int | None
    levels: list[Level]


class BenchmarkList(BaseModel):
    results: list[BenchmarkResult]
    skipped_files: list[str]


class NodeRecommendation(BaseModel):
    choice: str | None
    ranking: list[dict[str, Any]]
    reasons: list[str]


class Recommendation(BaseModel):
    available: bool
    message: str
    nodes: dict[str, NodeRecommendation] = {}
    nodes_without_facts: list[str] = []
