# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""From request records to the numbers in the results: per-level statistics, goodput, decode bound.

Formulas are the ones in METRIC_DEFINITIONS (llm_bench_schema) and nowhere else. Standard library only.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_client import RequestRecord

LATENCY_METRICS = ("ttfr_ms", "ttft_ms", "ttfat_ms", "tpot_ms", "itl_ms", "e2el_ms")

# Past these the client may be measuring itself: a warning goes into the results.
CLIENT_CPU_WARN_CORES = 0.7  # per client process, while the level streamed
CLIENT_LAG_WARN_MS = 2.0  # p99 of read time - arrival time


def percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, which vLLM's bench uses)."""
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def describe(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "mean": None, "median": None, "p90": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)
    summary: dict[str, Any] = {"count": len(ordered), "mean": round(sum(ordered) / len(ordered), 3)}
    for name, q in (("median", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        summary[name] = round(percentile(ordered, q), 3)
    summary["max"] = round(ordered[-1], 3)
    return summary


def request_metrics(record: RequestRecord) -> dict[str, Any]:
    """Latencies of one completed request in ms; tpot_ms is None below two output tokens.

    ttfat_ms (time to first answer token) is the first chunk with delta.content: equal to ttft_ms
    when no reasoning came first, None when reasoning used every token and no answer came.
    """
    assert record.end is not None and record.first_event is not None, "only completed requests"
    ttft = (record.content_times[0] - record.sent) * 1000.0
    e2el = (record.end - record.sent) * 1000.0
    tokens = record.output_tokens or 0
    return {
        "ttfr_ms": (record.first_event - record.sent) * 1000.0,
        "ttft_ms": ttft,
        "ttfat_ms": (record.first_answer - record.sent) * 1000.0 if record.first_answer is not None else None,
        "e2el_ms": e2el,
        "tpot_ms": (e2el - ttft) / (tokens - 1) if tokens > 1 else None,
        "itl_ms": [(b - a) * 1000.0 for a, b in pairwise(record.content_times)],
    }


def server_tpot_ms(record: RequestRecord) -> float | None:
    """The server's own TPOT: predicted_ms / (predicted_n - 1); None without usable timings.

    llama-server's predicted_ms runs from sampling the first generated token to sampling the last,
    so it spans predicted_n - 1 decode steps (the first token comes from the prompt pass, whose
    time is prompt_ms). That is the interval the client's tpot_ms measures between the first
    content chunk and the end of the stream. Older builds publish predicted_per_token_ms as
    predicted_ms / predicted_n, which reads (n - 1) / n too low; it is not used.
    """
    timings = record.server_timings or {}
    predicted_n, predicted_ms = timings.get("predicted_n"), timings.get("predicted_ms")
    if not isinstance(predicted_n, int) or not isinstance(predicted_ms, int | float) or predicted_n < 2:
        return None
    return predicted_ms / (predicted_n - 1)


def token_source(sources: list[str | None]) -> str | None:
    """usage when every count came from the server, chunks when none did, mixed otherwise."""
    found = {source for source in sources if source}
    if not found:
        return None
    return found.pop() if len(found) == 1 else "mixed"


def summarise_level(
    concurrency: int,
    records: list[RequestRecord],
    duration_s: float,
    client: dict[str, Any] | None = None,
) -> dict[str, Any]:
    done = [record for record in records if record.ok]
    failed = [record for record in records if not record.ok]
    errors: dict[str, int] = {}
    examples: list[str] = []
    for record in failed:
        kind = record.error or "unknown"
        errors[kind] = errors.get(kind, 0) + 1
        message = f"{kind}: {record.error_detail}" if record.error_detail else kind
        if message not in examples and len(examples) < 3:
            examples.append(message)
    pooled: dict[str, list[float]] = {name: [] for name in LATENCY_METRICS}
    decode_rates: list[float] = []
    server_tpots = [tpot for record in done if (tpot := server_tpot_ms(record)) is not None]
    for record in done:
        metrics = request_metrics(record)
        pooled["itl_ms"].extend(metrics.pop("itl_ms"))
        for name, value in metrics.items():
            if value is not None:
                pooled[name].append(value)
        if metrics["tpot_ms"]:
            decode_rates.append(1000.0 / metrics["tpot_ms"])
    total_tokens = sum(record.output_tokens or 0 for record in done)
    level: dict[str, Any] = {
        "concurrency": concurrency,
        "requests": len(records),
        "completed": len(done),
        "failed": len(failed),
        "errors": errors,
        "error_examples": examples,
        "duration_s": round(duration_s, 4),
        "request_per_s": round(len(done) / duration_s, 3) if duration_s > 0 else None,
        "total_output_tokens": total_tokens,
        "output_tokens_per_s": round(total_tokens / duration_s, 3) if duration_s > 0 else None,
        "token_source": token_source([record.token_source for record in done]),
        "decode_tokens_per_s_median": describe(decode_rates)["median"],
    }
    for name in LATENCY_METRICS:
        level[name] = describe(pooled[name])
    level["server_tpot_ms"] = describe(server_tpots)
    level["requests_with_reasoning"] = sum(1 for record in done if record.reasoning)
    level["requests_without_answer"] = sum(1 for record in done if record.first_answer is None)
    # The input as the server counted it, chat template included, and how much of it came from
    # the server's prefix cache (null counts: the server did not say).
    level["prompt_tokens"] = describe([r.prompt_tokens for r in done if r.prompt_tokens is not None])
    level["cached_prompt_tokens"] = describe([r.cached_tokens for r in done if r.cached_tokens is not None])
    if client is not None:
        level["client"] = client
    return level


def summarise_client(
    processes: int, duration_s: float, cpu_s: float, uses: list[Any], rerun_from: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The client's own load during a level, and warnings when it may have measured itself.

    uses: one llm_bench_load.ProcessUse per client process (cpu_s, busy_s, lags_ms, stamp counts).
    """
    lags = sorted(lag for use in uses for lag in use.lags_ms)
    kernel = sum(use.kernel_stamps for use in uses)
    read = sum(use.read_stamps for use in uses)
    busiest = max((use.cpu_s / use.busy_s for use in uses if use.busy_s > 0), default=0.0)
    lag = {"count": len(lags), "median": None, "p99": None, "max": None}
    if lags:
        lag.update(
            median=round(percentile(lags, 50), 3), p99=round(percentile(lags, 99), 3), max=round(lags[-1], 3)
        )
    warnings = []
    if busiest > CLIENT_CPU_WARN_CORES:
        warnings.append(
            f"a client process used {busiest:.2f} of a core while streaming (over {CLIENT_CPU_WARN_CORES}): "
            "it may not have kept up"
        )
    # Lag with little CPU of its own means the client waited for a CPU: the machine was busy.
    saturated = busiest > CLIENT_CPU_WARN_CORES
    if lag["p99"] is not None and lag["p99"] > CLIENT_LAG_WARN_MS:
        saturated = saturated or busiest > CLIENT_CPU_WARN_CORES / 2
        cause = "" if saturated else f" although it used only {busiest:.2f} of a core: the machine was busy"
        warnings.append(
            f"the client read chunks {lag['p99']:.1f} ms after they arrived (p99, over {CLIENT_LAG_WARN_MS} ms)"
            f"{cause}; chunks of one stream closer together than that share a stamp, and requests went out late"
        )
    summary: dict[str, Any] = {
        "processes": processes,
        "cpu_cores": round(cpu_s / duration_s, 3) if duration_s > 0 else None,
        "cpu_cores_per_process_max": round(busiest, 3),
        "stamps": {(True, False): "kernel", (False, True): "read", (True, True): "mixed"}.get(
            (kernel > 0, read > 0)
        ),
        "stamp_lag_ms": lag,
        "warnings": warnings,
        # The client's own work (not the machine's) made it lag: more processes would help.
        "saturated": saturated,
    }
    if rerun_from is not None:
        summary["rerun_from"] = rerun_from
    return summary


def request_meets_slo(record: RequestRecord, slo_ttft_ms: float, slo_tpot_ms: float) -> bool:
    """One completed request inside both SLOs and, where its reply was checked, a valid one.

    A request of one output token has no TPOT: only its TTFT is judged (vLLM's bench does the same).
    """
    if not record.ok or getattr(record, "valid", None) is False:
        return False
    metrics = request_metrics(record)
    return metrics["ttft_ms"] <= slo_ttft_ms and (
        metrics["tpot_ms"] is None or metrics["tpot_ms"] <= slo_tpot_ms
    )


def level_goodput(
    records: list[RequestRecord], duration_s: float, slo_ttft_ms: float, slo_tpot_ms: float
) -> dict[str, Any]:
    """Requests per second that met every SLO (DistServe's and vLLM's bench's goodput), for one level."""
    good = sum(1 for record in records if request_meets_slo(record, slo_ttft_ms, slo_tpot_ms))
    return {
        "good_requests": good,
        "goodput_request_per_s": round(good / duration_s, 3) if duration_s > 0 else None,
    }


def meets_slo(level: dict[str, Any], slo_ttft_ms: float, slo_tpot_ms: float) -> bool:
    """The whole level: p95 TTFT and TPOT inside the SLOs, no failed request, no invalid reply."""
    ttft, tpot = level["ttft_ms"]["p95"], level["tpot_ms"]["p95"]
    return (
        level["failed"] == 0
        and level["completed"] > 0
        and not (level.get("structured") or {}).get("invalid")
        and ttft is not None
        and ttft <= slo_ttft_ms
        and tpot is not None
        and tpot <= slo_tpot_ms
    )


def max_concurrency_within_slo(
    levels: list[dict[str, Any]], slo_ttft_ms: float, slo_tpot_ms: float
) -> dict[str, Any]:
    """The highest tested concurrency meeting both p95 SLOs with no failures (None if none did)."""
    passing = [level for level in levels if meets_slo(level, slo_ttft_ms, slo_tpot_ms)]
    best = max(passing, key=lambda level: level["concurrency"]) if passing else None
    tested = sorted(level["concurrency"] for level in levels)
    above = [c for c in tested if best is not None and c > best["concurrency"]]
    return {
        "concurrency": best["concurrency"] if best else None,
        "request_per_s": best["request_per_s"] if best else None,
        "output_tokens_per_s": best["output_tokens_per_s"] if best else None,
        "slo_ttft_ms": slo_ttft_ms,
        "slo_tpot_ms": slo_tpot_ms,
        # None when the best level was the highest tested: the real limit may lie above the sweep.
        "next_level_tested": above[0] if above else None,
        "levels_meeting_slo": sorted(level["concurrency"] for level in passing),
    }


def goodput(levels: list[dict[str, Any]], slo_ttft_ms: float, slo_tpot_ms: float) -> dict[str, Any]:
    """The best level's requests per second that met every SLO (levels carry goodput_request_per_s)."""
    rated = [level for level in levels if level.get("goodput_request_per_s") is not None]
    best = max(rated, key=lambda level: (level["goodput_request_per_s"], -level["concurrency"]), default=None)
    return {
        "request_per_s": best["goodput_request_per_s"] if best else None,
        "concurrency": best["concurrency"] if best else None,
        "good_requests": best["good_requests"] if best else None,
        "requests": best["requests"] if best else None,
        "slo_ttft_ms": slo_ttft_ms,
        "slo_tpot_ms": slo_tpot_ms,
    }


# A single stream measured above its bound by more than timing noise means the bound is wrong.
DECODE_BOUND_TOLERANCE = 0.05
_BOUND_HINTS = {
    "measured_cpu_read": (
        "the bandwidth was measured on the host's CPU: a model served from GPU memory needs the GPU's "
        "figure (memory_bandwidth_source gpu)"
    ),
    "gpu_datasheet": "check gpus_used and gpu_split against how the server spreads the model over its GPUs",
    "gpu_measured": "check gpus_used and gpu_split against how the server spreads the model over its GPUs",
    "given": "check the given memory_bandwidth_gbps",
}


def decode_bound(
    levels: list[dict[str, Any]],
    bandwidth_gbps: float | None,
    model_bytes: int | None,
    source: str | None = None,
    method: str | None = None,
    gpus_used: int | None = None,
) -> dict[str, Any]:
    """Single-stream decode reads every weight once per token: tokens/s <= bandwidth / model bytes.

    achieved_fraction is never above 1 + DECODE_BOUND_TOLERANCE: past it, it is null and `warning`
    says the bound is wrong (the bandwidth of the wrong memory, or model_bytes is not what a token
    reads), so no report can print "4731 %".
    """
    result: dict[str, Any] = {
        "memory_bandwidth_gbps": bandwidth_gbps,
        "source": source,
        "method": method,
        "tokens_per_s_upper": None,
        "single_stream_decode_tokens_per_s": None,
        "achieved_fraction": None,
        "warning": None,
    }
    if not bandwidth_gbps or not model_bytes:
        return {**result, "note": "needs model_bytes and a memory bandwidth"}
    if gpus_used:
        result["weights_bytes_per_gpu"] = model_bytes // gpus_used
    upper = bandwidth_gbps * 1e9 / model_bytes
    single = next((level for level in levels if level["concurrency"] == 1), None)
    achieved = single["decode_tokens_per_s_median"] if single else None
    result["tokens_per_s_upper"] = round(upper, 3)
    result["single_stream_decode_tokens_per_s"] = achieved
    note = "weights only (KV cache reads ignored), so the true bound is a little lower"
    if not single:
        note += "; concurrency 1 was not tested, so nothing to compare"
    fraction = achieved / upper if achieved else None
    if fraction is not None and fraction > 1 + DECODE_BOUND_TOLERANCE:
        hint = _BOUND_HINTS.get(source or "", "check the bandwidth")
        result["warning"] = (
            f"the bound is wrong, not the server: one stream decoded {achieved:g} tokens/s, {fraction:.2f} x the "
            f"bound of {upper:.3g} tokens/s ({bandwidth_gbps:g} GB/s, {source or 'unknown source'} / "
            f"{model_bytes} bytes). Either {hint}, or model_bytes is not the bytes one token reads (a "
            "mixture-of-experts model reads only its active experts, speculative decoding emits several "
            "tokens per read of the weights)"
        )
        fraction = None
    result["achieved_fraction"] = round(fraction, 4) if fraction is not None else None
    return {**result, "note": note}
