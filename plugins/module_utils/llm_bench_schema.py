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
    "ttfat_ms": "time to first answer token: request sent -> first SSE chunk with delta.content, reasoning "
    "(delta.reasoning_content or delta.reasoning) not counted; equal to ttft_ms when no reasoning came "
    "first, absent (not in the percentiles) when the request ended without answer text "
    "(requests_without_answer); requests_with_reasoning counts requests that streamed reasoning",
    "tpot_ms": "(e2el_ms - ttft_ms) / (output_tokens - 1), per request with output_tokens >= 2",
    "server_tpot_ms": "the server's own timings, where it sends them (llama-server): "
    "predicted_ms / (predicted_n - 1), per request; count 0 when the server sends none",
    "itl_ms": "gaps between consecutive content chunks, pooled over the level's requests",
    "e2el_ms": "request sent -> last byte of the response",
    "prompt_tokens": "usage.prompt_tokens per completed request (the chat template's tokens included), "
    "over the level; count 0 when the server sends none",
    "cached_prompt_tokens": "prompt tokens the server served from its prefix cache per completed request: "
    "usage.prompt_tokens_details.cached_tokens, else llama-server's timings.cache_n; count 0 when the "
    "server reports neither (vLLM without --enable-prompt-tokens-details)",
    "workload.measured_input": "prompt_tokens and cached_prompt_tokens over every measured request of the run",
    "client.cpu_cores": "CPU seconds of the whole client (this process and its worker processes) while the "
    "level streamed / duration_s; cpu_cores_per_process_max: the busiest process's CPU seconds / its "
    "streaming time; parsing the SSE events happens after the level and is not counted",
    "client.stamp_lag_ms": "per read of a socket: time the client read it - time its newest bytes arrived "
    "(the kernel's SO_TIMESTAMPNS receive timestamp), median, p99 and max; count 0 when stamps are read "
    "times (client.stamps 'read')",
    "client.warnings": "a client process over 0.7 core, or stamp lag p99 over 2 ms; saturated: the "
    "client's own work caused it (over 0.7 core, or lag with over 0.35 core), and the level was then "
    "measured again over twice the processes (rerun_from holds the first try)",
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
    "decode_bound.achieved_fraction": "concurrency 1 decode_tokens_per_s_median / tokens_per_s_upper; null "
    "with decode_bound.warning when above 1.05 (the bound is then wrong, not the server)",
    "decode_bound.memory_bandwidth_gbps": "measured_cpu_read: bytes scanned read-only by the server's thread "
    "count / wall time; gpu_datasheet: per-GPU datasheet figure x GPUs used with tensor parallelism (one "
    "GPU's with a layer split); gpu_measured: the same from a timed copy on GPU 0; given: as given",
    "stale_connections_retried": "requests sent again on a new connection because the server had closed "
    "the kept-alive one before reading them (llama-server closes after every stream); the clock restarts",
    "clock": "time.perf_counter on the client (CLOCK_MONOTONIC, shared by its worker processes); every "
    "content chunk's time is when its bytes arrived in the kernel, not when the client read them; "
    "connections are opened before the clock starts",
}
