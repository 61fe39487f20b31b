# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Benchmark an OpenAI-compatible server: closed-loop concurrency sweep, results schema version 1.

Shared by the llm_benchmark module (on the node) and the animaflow-bench command. Standard library
only. The transport is llm_bench_client, the closed loop of a level (in one event loop or over
forked processes) llm_bench_load, the arithmetic llm_bench_stats, the formulas llm_bench_schema.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ansible_collections.animaflow.inference.plugins.module_utils.gpu_bandwidth import GPU_SPLITS
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_client import (
    ConnectionPool,
    Endpoint,
    RequestRecord,
    build_request,
    parse_endpoint,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_host import (
    BANDWIDTH_SOURCES,
    memory_bandwidth,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_load import (
    ClientPlan,
    measure_level,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_schema import (
    METRIC_DEFINITIONS,
    SCHEMA_VERSION,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_stats import (
    CLIENT_CPU_WARN_CORES,
    CLIENT_LAG_WARN_MS,
    decode_bound,
    describe,
    goodput,
    level_goodput,
    max_concurrency_within_slo,
    summarise_level,
    token_source,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_structured import (
    SCHEMA,
    SCHEMA_NAME,
    STRUCTURED_MIN_OUTPUT_TOKENS,
    STRUCTURED_PROMPT,
    check_reply,
    response_format,
    schema_sha256,
)
from ansible_collections.animaflow.inference.plugins.module_utils.model_formats import (
    describe as describe_model,
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
    "workload": "chat",
    "shared_prefix_tokens": 1024,
}
# What each request asks for: chat (a plain streamed completion), structured (a JSON record under a
# strict json_schema, each reply checked), shared_prefix (one long system prompt shared by every
# request, measured against a control whose system prompts are as long but each its own).
WORKLOADS = ("chat", "structured", "shared_prefix")

# Short common English words: most tokenizers give each one token, so N words approximate N tokens.
_FILLER = (
    "river", "stone", "cloud", "light", "green", "house", "paper", "window", "music", "table",
    "garden", "winter", "summer", "market", "yellow", "silver", "orange", "forest", "bridge", "candle",
    "mirror", "pocket", "rabbit", "ladder", "castle", "button", "camera", "planet", "rocket", "marble",
    "pencil", "basket", "jacket", "bottle", "carpet", "meadow", "harbor", "valley", "island", "desert",
    "coffee", "butter", "cotton", "copper", "timber", "velvet", "thunder", "shadow", "signal", "anchor",
    "circle", "dragon", "engine",
)  # fmt: skip
# The opening word of each prompt: one per initial letter, so that consecutive requests differ
# from their first character on whatever the tokenizer (a leading word without its space is often
# split, "rocket" -> "rock" "et", and two words sharing a first piece would share a cached token).
_OPENERS = (
    "river", "stone", "cloud", "light", "green", "house", "paper", "window", "music", "table",
    "yellow", "orange", "forest", "bridge", "jacket", "valley", "island", "desert", "anchor", "engine",
)  # fmt: skip
PROMPT_METHOD = (
    "one user message per request, unique from its first word: two words picked by the request's "
    "number from a per-run random offset (consecutive requests start with different letters), then "
    "filler words drawn with the seed, then the tag 'Request <run>-<n>' and the instruction to repeat "
    "the words; about 1 token per word. The chat template's own opening (system prompt, role "
    "markers) comes before the user text, is the same for every request and cannot be avoided: a "
    "server with prefix caching serves it from cache. Each level reports the prompt tokens the server "
    "counted (prompt_tokens, template included) and those it took from its cache "
    "(cached_prompt_tokens), where the server says"
)
STRUCTURED_METHOD = (
    "the chat prompt's words (about input_tokens), then the instruction to describe a shot as a JSON "
    "record; response_format json_schema (strict) with the schema below; each reply's answer text "
    "(delta.content) is parsed and checked against it by the client (a reply cut at max_tokens, "
    "finish_reason length, is invalid). output_tokens is max_tokens, a cap: a reply ends with its "
    "record. An invalid reply is a completed request, not a failed one"
)
SHARED_PREFIX_METHOD = (
    "a system prompt of about shared_prefix_tokens words (1 token each, roughly), the same for every "
    "request of the run and new for each run, before the chat prompt's user message (about "
    "input_tokens, distinct per request). Before each level, concurrency unmeasured one-token "
    "requests carry the prefix (so a server caching per slot holds it wherever the level runs); after "
    "the level, as many control requests whose system prompts are as long but distinct from their "
    "first word run at the same concurrency: levels[].prefix.unique"
)
_REPEAT = "repeat these words, then keep writing more of them."
CLIENT_STAMPS = (
    "each read is stamped with the kernel's receive time of its newest bytes (SO_TIMESTAMPNS), else "
    "with the read time (levels[].client.stamps says which); stamp lag = read time - arrival time, per "
    "read. A level whose client was saturated (its own CPU, not a busy machine) is measured again over "
    "twice the processes, once"
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
    # Recorded in target: the inventory name of the node, and the animaflow_models entry served
    # (its family, format and quantisation, model_formats.describe).
    node: str | None = None
    model_entry: dict[str, Any] | None = None
    model_bytes: int | None = None
    gpu: dict[str, Any] | None = None
    cpu: dict[str, Any] | None = None
    # The decode bound's bandwidth (llm_bench_host.memory_bandwidth): a given figure wins; else
    # "cpu" measures reads with `threads` threads (default: physical cores), "gpu" takes the GPU
    # facts' datasheet figure (or a device probe run with gpu_python), "auto" picks by the GPU facts.
    memory_bandwidth_gbps: float | None = None
    memory_bandwidth_source: str = "auto"
    threads: int | None = None
    gpus_used: int | None = None
    gpu_split: str | None = None  # default by backend: layer for llamacpp and ollama, else tensor
    gpu_python: str | None = None
    # Client worker processes per level: None lets llm_bench_load.ClientPlan pick them (one per
    # STREAMS_PER_PROCESS streams, at most the CPUs, more after a level whose client
    # was saturated); 1 keeps the whole client in one event loop.
    client_processes: int | None = None
    # One of WORKLOADS; shared_prefix_tokens: the shared system prompt's length (shared_prefix).
    workload: str = DEFAULTS["workload"]
    shared_prefix_tokens: int = DEFAULTS["shared_prefix_tokens"]

    def validate(self) -> None:
        if not self.concurrency or any(level < 1 for level in self.concurrency):
            raise ValueError("concurrency must be a non-empty list of integers >= 1")
        for name in ("requests_per_level", "input_tokens", "output_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.warmup_requests < 0 or self.timeout_s <= 0:
            raise ValueError("warmup_requests must be >= 0 and timeout_s > 0")
        parse_endpoint(self.base_url)
        if self.client_processes is not None and self.client_processes < 1:
            raise ValueError("client_processes must be >= 1 when given")
        if self.memory_bandwidth_source not in BANDWIDTH_SOURCES or self.gpu_split not in (None, *GPU_SPLITS):
            raise ValueError(
                f"memory_bandwidth_source must be one of {', '.join(BANDWIDTH_SOURCES)} and gpu_split one of "
                f"{', '.join(GPU_SPLITS)}"
            )
        for name in ("threads", "gpus_used", "memory_bandwidth_gbps"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 when given")
        self._validate_workload()

    def _validate_workload(self) -> None:
        if self.workload not in WORKLOADS:
            raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, got {self.workload!r}")
        if self.shared_prefix_tokens < 1:
            raise ValueError("shared_prefix_tokens must be >= 1")
        if self.workload != "structured":
            return
        if self.ignore_eos:
            raise ValueError(
                "workload structured needs ignore_eos false: ignore_eos keeps the server generating "
                "after the JSON record ends, where the schema's grammar allows only the end of the reply"
            )
        if self.output_tokens < STRUCTURED_MIN_OUTPUT_TOKENS:
            raise ValueError(
                f"workload structured needs output_tokens >= {STRUCTURED_MIN_OUTPUT_TOKENS}: it is the cap "
                "(max_tokens) each JSON reply must finish within, and a reply cut there is invalid"
            )


class Workload:
    """Builds each request's bytes before its level starts, so the clock measures only the server."""

    def __init__(self, config: BenchConfig, endpoint: Endpoint) -> None:
        self.config = config
        self.endpoint = endpoint
        self.run_id = secrets.token_hex(4)
        # Where this run's request numbers start in the openers: another run (same seed) starts elsewhere.
        self.offset = secrets.randbelow(len(_OPENERS) * len(_FILLER))
        self.rng = random.Random(config.seed)
        self.issued = 0
        self.kind = config.workload
        # The run's one shared system prompt: its run id and head are new each run, so a server still
        # holding an earlier run's prefix cannot serve it.
        self.shared_prefix = (
            self.system_prompt(self.offset - 1, "shared") if self.kind == "shared_prefix" else None
        )

    @staticmethod
    def _head(number: int) -> str:
        return f"{_OPENERS[number % len(_OPENERS)]} {_FILLER[number // len(_OPENERS) % len(_FILLER)]}"

    def prompt(self, index: int, instruction: str = _REPEAT) -> str:
        tail = f". Request {self.run_id}-{index}: {instruction}"
        words = max(0, self.config.input_tokens - 2 - len(tail) // 4)
        return (
            " ".join([self._head(self.offset + index), *(self.rng.choice(_FILLER) for _ in range(words))])
            + tail
        )

    def system_prompt(self, number: int, tag: str) -> str:
        """About shared_prefix_tokens words, unique from the first word on by `number` (as prompts are)."""
        notes = f". Reference notes {self.run_id}-{tag}:"
        words = max(0, self.config.shared_prefix_tokens - 2 - len(notes) // 4)
        return " ".join([self._head(number) + notes, *(self.rng.choice(_FILLER) for _ in range(words))])

    def body(self, index: int, system: str | None = None, max_tokens: int | None = None) -> dict[str, Any]:
        instruction = STRUCTURED_PROMPT if self.kind == "structured" else _REPEAT
        messages = [{"role": "user", "content": self.prompt(index, instruction)}]
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "max_tokens": max_tokens or self.config.output_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.config.ignore_eos:
            body["ignore_eos"] = True
        if self.kind == "structured":
            body["response_format"] = response_format()
        return body

    def _issue(
        self, count: int, system: Callable[[int], str | None], max_tokens: int | None = None
    ) -> list[bytes]:
        indexes = range(self.issued, self.issued + count)
        self.issued += count
        return [
            build_request(
                self.endpoint,
                json.dumps(self.body(index, system(index), max_tokens)).encode(),
                self.config.api_key,
            )
            for index in indexes
        ]

    def requests(self, count: int) -> list[bytes]:
        """The measured requests (and the warm-up): the shared system prompt first for shared_prefix."""
        return self._issue(count, lambda _index: self.shared_prefix)

    def priming_requests(self, count: int) -> list[bytes]:
        """shared_prefix: one-token requests carrying the shared prefix, unmeasured."""
        return self._issue(count, lambda _index: self.shared_prefix, max_tokens=1)

    def control_requests(self, count: int) -> list[bytes]:
        """shared_prefix: system prompts as long as the shared one, each its own from its first word."""
        return self._issue(count, lambda index: self.system_prompt(self.offset + index, f"u{index}"))


async def run_level(
    pool: ConnectionPool, requests: list[bytes], concurrency: int, timeout_s: float, processes: int = 1
) -> tuple[list[RequestRecord], float]:
    """Closed loop: each of `concurrency` workers sends its next request when the last one ends."""
    run = await measure_level(pool, requests, concurrency, timeout_s, processes)
    return run.records, run.duration_s


def check_replies(records: list[RequestRecord]) -> dict[str, Any]:
    """structured: mark each completed request's reply valid or not; the level's counts."""
    checked = valid = 0
    examples: list[str] = []
    for record in records:
        if not record.ok:
            continue  # a failed request is counted as failed, its reply never checked
        reason = check_reply(record.content, record.finish_reason)
        record.valid, record.invalid_reason = reason is None, reason
        checked += 1
        valid += reason is None
        if reason and reason not in examples and len(examples) < 3:
            examples.append(reason)
    return {"checked": checked, "valid": valid, "invalid": checked - valid, "invalid_examples": examples}


async def prime_prefix(pool: ConnectionPool, workload: Workload, concurrency: int, timeout_s: float) -> None:
    """Before a shared_prefix level's clock: `concurrency` one-token requests with the prefix at once.

    llama-server caches per slot and gives a request the slot whose cached prompt matches most; the
    level's unique controls before displaced the prefix, and one request would restore it in one slot.
    """
    await run_level(pool, workload.priming_requests(concurrency), concurrency, timeout_s)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator is not None and denominator else None


def _cache_warning(level: dict[str, Any], prefix_tokens: int) -> str | None:
    cached = level["cached_prompt_tokens"]
    if not cached["count"]:
        return (
            "the server reported no cached prompt tokens: whether the prefix came from its cache is unknown"
        )
    if cached["median"] < prefix_tokens / 2:
        return (
            f"the shared-prefix requests took a median {cached['median']:g} prompt tokens from the server's "
            f"cache, under half the {prefix_tokens}-token prefix: prefix caching is off or the prefix was "
            "evicted, and the ratios compare two uncached runs"
        )
    return None


async def unique_control(
    pool: ConnectionPool, plan: ClientPlan, workload: Workload, level: dict[str, Any], timeout_s: float
) -> dict[str, Any]:
    """shared_prefix: the level's control run, its prefix figures next to the level's (shared) ones."""
    concurrency, count = level["concurrency"], workload.config.requests_per_level
    run, client = await plan.level(pool, lambda: workload.control_requests(count), concurrency, timeout_s)
    control = summarise_level(concurrency, run.records, run.duration_s, client)
    keys = ("requests", "completed", "failed", "errors", "duration_s", "ttft_ms", "prompt_tokens")
    return {
        "shared_prefix_tokens": workload.config.shared_prefix_tokens,
        "priming_requests": concurrency,
        "unique": {
            **{key: control[key] for key in keys},
            "cached_prompt_tokens": control["cached_prompt_tokens"],
            "client": client,
        },
        "ttft_p50_ratio_unique_over_shared": _ratio(control["ttft_ms"]["median"], level["ttft_ms"]["median"]),
        "ttft_p95_ratio_unique_over_shared": _ratio(control["ttft_ms"]["p95"], level["ttft_ms"]["p95"]),
        "cache_warning": _cache_warning(level, workload.config.shared_prefix_tokens),
    }


def workload_details(config: BenchConfig) -> dict[str, Any]:
    """What results[workload] says about a structured or shared_prefix workload (nothing for chat)."""
    if config.workload == "structured":
        return {
            "structured": {
                "schema_name": SCHEMA_NAME,
                "schema_sha256": schema_sha256(),
                "schema": SCHEMA,
                "method": STRUCTURED_METHOD,
            }
        }
    if config.workload == "shared_prefix":
        return {
            "shared_prefix_tokens": config.shared_prefix_tokens,
            "shared_prefix_method": SHARED_PREFIX_METHOD,
        }
    return {}


def _measured_input(records: list[RequestRecord]) -> dict[str, Any]:
    prompt = describe([r.prompt_tokens for r in records if r.ok and r.prompt_tokens is not None])
    cached = describe([r.cached_tokens for r in records if r.ok and r.cached_tokens is not None])
    sources = sorted({r.cached_source for r in records if r.ok and r.cached_source})
    return {
        "prompt_tokens_mean": prompt["mean"],
        "prompt_tokens_median": prompt["median"],
        "requests_with_prompt_tokens": prompt["count"],
        "cached_prompt_tokens_mean": cached["mean"],
        "cached_prompt_tokens_max": cached["max"],
        "requests_with_cached_tokens": cached["count"],
        "cached_tokens_source": ", ".join(sources) or None,
        "note": "usage.prompt_tokens counts the chat template too; the cached tokens are the template's "
        "opening, shared by every request, unless a server reports more",
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


async def run_benchmark(config: BenchConfig) -> dict[str, Any]:
    config.validate()
    started_at = _now()
    # Before the sweep: the reads must not compete with the client and the server for the CPU.
    bandwidth = memory_bandwidth(
        source=config.memory_bandwidth_source,
        given_gbps=config.memory_bandwidth_gbps,
        threads=config.threads,
        cpu_facts=config.cpu,
        gpu_facts=config.gpu,
        gpus_used=config.gpus_used,
        gpu_split=config.gpu_split,
        gpu_python=config.gpu_python,
        backend=config.backend,
    )
    endpoint = parse_endpoint(config.base_url)
    endpoint.keep_content = config.workload == "structured"  # the replies are checked after each level
    workload = Workload(config, endpoint)
    pool = ConnectionPool(endpoint)
    levels: list[dict[str, Any]] = []
    measured: list[RequestRecord] = []
    plan = ClientPlan(config.client_processes)
    try:
        if config.warmup_requests:
            await run_level(pool, workload.requests(config.warmup_requests), 1, config.timeout_s)
        for concurrency in config.concurrency:
            if config.workload == "shared_prefix":
                await prime_prefix(pool, workload, concurrency, config.timeout_s)
            run, client = await plan.level(
                pool, lambda: workload.requests(config.requests_per_level), concurrency, config.timeout_s
            )
            structured = check_replies(run.records) if config.workload == "structured" else None
            measured += run.records
            levels.append(summarise_level(concurrency, run.records, run.duration_s, client))
            levels[-1].update(
                level_goodput(run.records, run.duration_s, config.slo_ttft_ms, config.slo_tpot_ms)
            )
            if structured is not None:
                levels[-1]["structured"] = structured
            if config.workload == "shared_prefix":
                levels[-1]["prefix"] = await unique_control(
                    pool, plan, workload, levels[-1], config.timeout_s
                )
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
            "node": config.node,
            **describe_model(config.model_entry),
        },
        "host": {
            "gpu": config.gpu,
            "cpu": config.cpu,
            "memory_bandwidth_gbps": bandwidth["gbps"],
            "memory_bandwidth_source": bandwidth["source"],
            "memory_bandwidth_method": bandwidth["method"],
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
            "measured_input": _measured_input(measured),
            "connections_opened": pool.opened + plan.opened,
            "stale_connections_retried": pool.stale_retries + plan.retried,
            "kind": config.workload,
            **workload_details(config),
        },
        "client": {
            "stamps": CLIENT_STAMPS,
            "cpu_warn_cores_per_process": CLIENT_CPU_WARN_CORES,
            "stamp_lag_warn_p99_ms": CLIENT_LAG_WARN_MS,
            "warnings": [
                f"concurrency {level['concurrency']}: {warning}"
                for level in levels
                for warning in level["client"]["warnings"]
            ],
        },
        "levels": levels,
        "token_source": source,
        "token_source_note": _token_note(source),
        "goodput": goodput(levels, config.slo_ttft_ms, config.slo_tpot_ms),
        "max_concurrency_within_slo": max_concurrency_within_slo(
            levels, config.slo_ttft_ms, config.slo_tpot_ms
        ),
        "decode_bound": decode_bound(
            levels,
            bandwidth["gbps"],
            config.model_bytes,
            source=bandwidth["source"],
            method=bandwidth["method"],
            gpus_used=bandwidth.get("gpus_used")
            if bandwidth["source"] in ("gpu_datasheet", "gpu_measured")
            else None,
        ),
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
