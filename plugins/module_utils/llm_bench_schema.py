# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The results' version and the formula behind every number, written into each results file.

Tools name these metrics differently (vLLM's TPOT is AIPerf's ITL), so the formulas travel with
the numbers rather than living only in documentation.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

METRIC_DEFINITIONS: dict[str, str] = {
    "ttfr_ms": "request sent -> first SSE data event of any kind (often a role-only chunk)",
    "ttft_ms": "request sent -> first SSE chunk carrying generated content (delta.content or reasoning)",
    "tpot_ms": "(e2el_ms - ttft_ms) / (output_tokens - 1), per request with output_tokens >= 2",
    "server_tpot_ms": "the server's own timings, where it sends them (llama-server): "
    "predicted_ms / (predicted_n - 1), per request; count 0 when the server sends none",
    "itl_ms": "gaps between consecutive content chunks, pooled over the level's requests",
    "e2el_ms": "request sent -> last byte of the response",
    "output_tokens": "usage.completion_tokens from the server's final chunk (stream_options.include_usage); "
    "content chunks counted only when usage is missing (token_source says which)",
    "output_tokens_per_s": "sum of completed requests' output_tokens / level wall duration_s",
    "request_per_s": "completed requests / level wall duration_s",
    "duration_s": "first request sent -> last request finished, for the level",
    "decode_tokens_per_s_median": "median over completed requests of 1000 / tpot_ms",
    "percentiles": "linear interpolation between closest ranks (numpy default), completed requests only; "
    "failed requests are counted in failed/errors and never enter a latency",
    "goodput": "highest tested concurrency with p95 ttft_ms <= slo_ttft_ms, p95 tpot_ms <= slo_tpot_ms "
    "and no failed request",
    "decode_bound.tokens_per_s_upper": "memory_bandwidth_gbps * 1e9 / model_bytes",
    "decode_bound.achieved_fraction": "concurrency 1 decode_tokens_per_s_median / tokens_per_s_upper",
    "stale_connections_retried": "requests sent again on a new connection because the server had closed "
    "the kept-alive one before reading them (llama-server closes after every stream); the clock restarts",
    "clock": "time.perf_counter on the client; connections are opened before the clock starts",
}
