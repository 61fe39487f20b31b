# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The results' version and the formula behind every number, written into each results file.

Tools name these metrics differently (vLLM's TPOT is AIPerf's ITL), so the formulas travel with
the numbers rather than living only in documentation.
"""

from __future__ import annotations

from typing import Any

# 2: goodput is requests per second inside every SLO (was: the highest concurrency inside the p95 SLOs,
# now max_concurrency_within_slo); target names the node, the model's family, format and quantisation.
SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)

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
    "goodput_request_per_s": "per level: completed requests whose own ttft_ms <= slo_ttft_ms and tpot_ms <= "
    "slo_tpot_ms (no tpot_ms: one output token, judged on ttft_ms alone) and, where replies are checked, "
    "whose reply was valid / duration_s (DistServe's goodput, vLLM bench's --goodput); good_requests: "
    "how many such requests",
    "goodput": "the level with the highest goodput_request_per_s: request_per_s, concurrency, good_requests",
    "max_concurrency_within_slo": "highest tested concurrency with p95 ttft_ms <= slo_ttft_ms, p95 tpot_ms <= "
    "slo_tpot_ms, no failed request and no invalid reply (schema_version 1 called it goodput)",
    "target.model_family, target.model_format, target.quantisation": "the served model as animaflow_models "
    "declares it (family: the same model in every format; quantisation read from a GGUF file name when "
    "not declared)",
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
    "workload.kind": "what every request asked for: chat (a streamed completion), structured (a JSON record "
    "under response_format json_schema, strict; each reply checked) or shared_prefix (one long system prompt "
    "shared by every request of the run, measured against unique-prefix controls)",
    "workload.structured": "structured only: schema_name, schema (the JSON Schema sent), schema_sha256 "
    "(sha256 of the schema as JSON with sorted keys and no spaces), method; output_tokens is max_tokens, "
    "a cap the reply's record must finish within",
    "workload.shared_prefix_tokens": "shared_prefix only: length of the shared system prompt in words, about "
    "one token each (levels[].prompt_tokens says what the server counted)",
    "structured": "per level, structured only: checked (completed requests whose reply was checked), valid, "
    "invalid, invalid_examples (up to 3 distinct reasons). A reply is valid when its answer text "
    "(delta.content joined) parses as JSON and meets the schema (type, required, properties, "
    "additionalProperties false, enum, items, minItems/maxItems, minimum/maximum, minLength/maxLength); "
    "finish_reason length is invalid ('cut at max_tokens'). An invalid reply is a completed request, "
    "not a failed one (failed: transport and HTTP errors)",
    "prefix": "per level, shared_prefix only: the level's own figures (ttft_ms, cached_prompt_tokens, ...) "
    "are the shared-prefix requests'; before them priming_requests (= concurrency) unmeasured one-token "
    "requests carried the prefix; after them as many control requests as the level, at its concurrency, "
    "had system prompts of the same length but each its own from the first word (no cache can serve "
    "them): prefix.unique holds their requests, completed, failed, errors, duration_s, ttft_ms, "
    "prompt_tokens, cached_prompt_tokens and client",
    "prefix.ttft_p50_ratio_unique_over_shared": "prefix.unique.ttft_ms.median / ttft_ms.median (null without "
    "both); prefix.ttft_p95_ratio_unique_over_shared the same with p95. Above 1: the shared prefix made "
    "the first token come sooner",
    "prefix.cache_warning": "set when the shared-prefix requests took under half the prefix from the "
    "server's cache (median cached_prompt_tokens < shared_prefix_tokens / 2), or the server reported no "
    "cached tokens; null otherwise",
}


def readable(results: Any) -> bool:
    return isinstance(results, dict) and results.get("schema_version") in READABLE_SCHEMA_VERSIONS


def current(results: dict[str, Any]) -> dict[str, Any]:
    """Results of any readable version as the current version reads: schema_version 1's goodput was the
    highest concurrency inside the SLOs, which is max_concurrency_within_slo now; its request goodput
    was never measured."""
    if results.get("schema_version") != 1:
        return results
    old = results.get("goodput") or {}
    goodput = {"request_per_s": None, "concurrency": None, "good_requests": None, "requests": None}
    goodput.update(slo_ttft_ms=old.get("slo_ttft_ms"), slo_tpot_ms=old.get("slo_tpot_ms"))
    return {
        **results,
        "schema_version": SCHEMA_VERSION,
        "converted_from_schema_version": 1,
        "goodput": goodput,
        "max_concurrency_within_slo": old,
    }
