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

LATENCY_METRICS = ("ttfr_ms", "ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")


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
    """Latencies of one completed request in ms; tpot_ms is None below two output tokens."""
    assert record.end is not None and record.first_event is not None, "only completed requests"
    ttft = (record.content_times[0] - record.sent) * 1000.0
    e2el = (record.end - record.sent) * 1000.0
    tokens = record.output_tokens or 0
    return {
        "ttfr_ms": (record.first_event - record.sent) * 1000.0,
        "ttft_ms": ttft,
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


def summarise_level(concurrency: int, records: list[RequestRecord], duration_s: float) -> dict[str, Any]:
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
    return level


def meets_slo(level: dict[str, Any], slo_ttft_ms: float, slo_tpot_ms: float) -> bool:
    ttft, tpot = level["ttft_ms"]["p95"], level["tpot_ms"]["p95"]
    return (
        level["failed"] == 0
        and level["completed"] > 0
        and ttft is not None
        and ttft <= slo_ttft_ms
        and tpot is not None
        and tpot <= slo_tpot_ms
    )


def goodput(levels: list[dict[str, Any]], slo_ttft_ms: float, slo_tpot_ms: float) -> dict[str, Any]:
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


def decode_bound(
    levels: list[dict[str, Any]], bandwidth_gbps: float | None, model_bytes: int | None
) -> dict[str, Any]:
    """Single-stream decode reads every weight once per token: tokens/s <= bandwidth / model bytes."""
    if not bandwidth_gbps or not model_bytes:
        return {
            "tokens_per_s_upper": None,
            "achieved_fraction": None,
            "note": "needs model_bytes and a memory bandwidth",
        }
    upper = bandwidth_gbps * 1e9 / model_bytes
    single = next((level for level in levels if level["concurrency"] == 1), None)
    achieved = single["decode_tokens_per_s_median"] if single else None
    return {
        "tokens_per_s_upper": round(upper, 3),
        "single_stream_decode_tokens_per_s": achieved,
        "achieved_fraction": round(achieved / upper, 4) if achieved else None,
        "note": "weights only (KV cache reads ignored), so the true bound is a little lower"
        + ("" if single else "; concurrency 1 was not tested, so nothing to compare"),
    }
