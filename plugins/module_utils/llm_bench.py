# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Benchmark an OpenAI-compatible server: closed-loop concurrency sweep, results schema version 1.

Shared by the llm_benchmark module (on the node) and the animaflow-bench command. Standard library
only. The transport is llm_bench_client, the arithmetic llm_bench_stats, the formulas
llm_bench_schema.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_client import (
    ConnectionPool,
    Endpoint,
    RequestRecord,
    build_request,
    parse_endpoint,
    send_request,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_host import (
    measure_memory_bandwidth,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_schema import (
    METRIC_DEFINITIONS,
    SCHEMA_VERSION,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_stats import (
    decode_bound,
    goodput,
    summarise_level,
    token_source,
)

# The module's and the command's defaults; both read them from here.
DEFAULTS: dict[str, Any] = {
    "concurrency": [1, 2, 4, 8],
    "requests_per_level": 8,
    "input_tokens": 128,
    "output_tokens": 64,
    "warmup_requests": 2,
    "ignore_eos": True,
    "slo_ttft_ms": 1000.0,
    "slo_tpot_ms": 100.0,
    "timeout_s": 120.0,
    "seed": 0,
}

# Short common English words: most tokenizers give each one token, so N words approximate N tokens.
_FILLER = (
    "river", "stone", "cloud", "light", "green", "house", "paper", "window", "music", "table",
    "garden", "winter", "summer", "market", "yellow", "silver", "orange", "forest", "bridge", "candle",
    "mirror", "pocket", "rabbit", "ladder", "castle", "button", "camera", "planet", "rocket", "marble",
    "pencil", "basket", "jacket", "bottle", "carpet", "meadow", "harbor", "valley", "island", "desert",
    "coffee", "butter", "cotton", "copper", "timber", "velvet", "thunder", "shadow", "signal", "anchor",
    "circle", "dragon", "engine",
)  # fmt: skip
PROMPT_METHOD = (
    "one user message per request: a prefix unique to the run and the request (so no request can "
    "reuse another's prefix cache, not even a previous run's), then filler words drawn with the seed; "
    "about 1 token per word and 1 per 4 prefix characters, chat template not counted"
)


@dataclass
class BenchConfig:
    base_url: str
    model: str
    api_key: str | None = None
    concurrency: list[int] = field(default_factory=lambda: list(DEFAULTS["concurrency"]))
    requests_per_level: int = DEFAULTS["requests_per_level"]
    input_tokens: int = DEFAULTS["input_tokens"]
    output_tokens: int = DEFAULTS["output_tokens"]
    warmup_requests: int = DEFAULTS["warmup_requests"]
    ignore_eos: bool = DEFAULTS["ignore_eos"]
    slo_ttft_ms: float = DEFAULTS["slo_ttft_ms"]
    slo_tpot_ms: float = DEFAULTS["slo_tpot_ms"]
    timeout_s: float = DEFAULTS["timeout_s"]
    seed: int = DEFAULTS["seed"]
    backend: str | None = None
    backend_version: str | None = None
    model_bytes: int | None = None
    gpu: dict[str, Any] | None = None
    cpu: dict[str, Any] | None = None
    # A datasheet figure (a GPU's memory bandwidth) replaces the host measurement when given.
    memory_bandwidth_gbps: float | None = None

    def validate(self) -> None:
        if not self.concurrency or any(level < 1 for level in self.concurrency):
            raise ValueError("concurrency must be a non-empty list of integers >= 1")
        for name in ("requests_per_level", "input_tokens", "output_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.warmup_requests < 0 or self.timeout_s <= 0:
            raise ValueError("warmup_requests must be >= 0 and timeout_s > 0")
        parse_endpoint(self.base_url)


class Workload:
    """Builds each request's bytes before its level starts, so the clock measures only the server."""

    def __init__(self, config: BenchConfig, endpoint: Endpoint) -> None:
        self.config = config
        self.endpoint = endpoint
        self.run_id = secrets.token_hex(4)
        self.rng = random.Random(config.seed)
        self.issued = 0

    def prompt(self, index: int) -> str:
        prefix = f"Request {self.run_id}-{index}. Repeat these words, then keep writing more of them: "
        words = max(1, self.config.input_tokens - len(prefix) // 4)
        return prefix + " ".join(self.rng.choice(_FILLER) for _ in range(words))

    def body(self, index: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [{"role": "user", "content": self.prompt(index)}],
            "max_tokens": self.config.output_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.config.ignore_eos:
            body["ignore_eos"] = True
        return body

    def requests(self, count: int) -> list[bytes]:
        indexes = range(self.issued, self.issued + count)
        self.issued += count
        return [
            build_request(self.endpoint, json.dumps(self.body(index)).encode(), self.config.api_key)
            for index in indexes
        ]


async def _open_connections(pool: ConnectionPool, count: int, timeout_s: float) -> None:
    """Open the level's connections before its clock starts; failures show up in the requests."""
    opened = await asyncio.gather(
        *(asyncio.wait_for(pool.acquire(), timeout_s) for _ in range(count)), return_exceptions=True
    )
    for conn in opened:
        if not isinstance(conn, BaseException):
            pool.release(conn)


async def run_level(
    pool: ConnectionPool, requests: list[bytes], concurrency: int, timeout_s: float
) -> tuple[list[RequestRecord], float]:
    """Closed loop: each of `concurrency` workers sends its next request when the last one ends."""
    workers = min(concurrency, len(requests))
    await _open_connections(pool, workers, timeout_s)
    queue = iter(enumerate(requests))  # shared: whichever worker is free takes the next request
    records: list[RequestRecord] = []

    async def worker() -> None:
        for index, request in queue:
            records.append(await send_request(pool, request, index, timeout_s))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return records, time.perf_counter() - start


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


async def run_benchmark(config: BenchConfig) -> dict[str, Any]:
    config.validate()
    started_at = _now()
    if config.memory_bandwidth_gbps:
        bandwidth, method = config.memory_bandwidth_gbps, "given by the caller"
    else:
        # Before the sweep: the copy must not compete with the client for the CPU.
        bandwidth, method = measure_memory_bandwidth()
    endpoint = parse_endpoint(config.base_url)
    workload = Workload(config, endpoint)
    pool = ConnectionPool(endpoint)
    levels: list[dict[str, Any]] = []
    try:
        if config.warmup_requests:
            await run_level(pool, workload.requests(config.warmup_requests), 1, config.timeout_s)
        for concurrency in config.concurrency:
            records, duration = await run_level(
                pool, workload.requests(config.requests_per_level), concurrency, config.timeout_s
            )
            levels.append(summarise_level(concurrency, records, duration))
    finally:
        await pool.close()
    source = token_source([level["token_source"] for level in levels])
    return {
        "schema_version": SCHEMA_VERSION,
        "target": {
            "base_url": config.base_url,
            "backend": config.backend,
            "version": config.backend_version,
            "model": config.model,
        },
        "host": {
            "gpu": config.gpu,
            "cpu": config.cpu,
            "memory_bandwidth_gbps": bandwidth,
            "memory_bandwidth_method": method,
            "model_bytes": config.model_bytes,
        },
        "workload": {
            "endpoint": endpoint.path,
            "concurrency": list(config.concurrency),
            "requests_per_level": config.requests_per_level,
            "input_tokens": config.input_tokens,
            "output_tokens": config.output_tokens,
            "warmup_requests": config.warmup_requests,
            "ignore_eos": config.ignore_eos,
            "timeout_s": config.timeout_s,
            "seed": config.seed,
            "load": "closed loop: each worker sends its next request when the previous one ends",
            "prompts": PROMPT_METHOD,
            "connections_opened": pool.opened,
            "stale_connections_retried": pool.stale_retries,
        },
        "levels": levels,
        "token_source": source,
        "token_source_note": _token_note(source),
        "goodput": goodput(levels, config.slo_ttft_ms, config.slo_tpot_ms),
        "decode_bound": decode_bound(levels, bandwidth, config.model_bytes),
        "metric_definitions": METRIC_DEFINITIONS,
        "started_at": started_at,
        "finished_at": _now(),
    }


def _token_note(source: str | None) -> str:
    if source == "usage":
        return "output tokens are the server's usage.completion_tokens"
    if source is None:
        return "no request completed, so no tokens were counted"
    return (
        "the server sent no usage for some or all requests: those counted content chunks, which "
        "undercounts when a chunk carries several tokens: TPOT then comes out too high and "
        "throughput too low"
    )
