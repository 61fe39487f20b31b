"""llama.cpp sweeps (the benchmark playbook with -e benchmark_tune=true): derived vs best, the suggestion."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Tuning(BaseModel):
    run_id: str
    host: str
    finished_at: str | None
    derived: dict[str, Any]
    # Per metric (decode: single stream tokens/s; throughput: output tokens/s at throughput_concurrency):
    # the derived settings' figure over the best candidate's, measured interleaved (<= 1).
    derived_vs_best: dict[str, float]
    meets_target: bool
    best: dict[str, str]
    winner: str
    # Role variables the suggestion sets (empty: keep the derived settings).
    suggestion: dict[str, Any]
    suggestion_file: str | None
    derived_decode: float | None
    derived_throughput: float | None
    throughput_concurrency: int
    load: list[list[float]]
