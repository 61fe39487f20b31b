"""The arithmetic behind the results: percentiles, per-request formulas, goodput, decode bound."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_client import RequestRecord
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_host import (
    measure_memory_bandwidth,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_stats import (
    decode_bound,
    describe,
    goodput,
    percentile,
    request_metrics,
    server_tpot_ms,
    summarise_level,
)


def record(index: int = 0, tokens: int = 9, error: str | None = None, source: str = "usage") -> RequestRecord:
    """Sent at 10 s, role chunk at +0.05 s, content every 0.1 s from +0.2 s, 5 chunks, end at +0.65 s."""
    if error:
        return RequestRecord(index=index, sent=10.0, error=error, error_detail="boom")
    return RequestRecord(
        index=index,
        sent=10.0,
        first_event=10.05,
        content_times=[10.2, 10.3, 10.4, 10.5, 10.6],
        end=10.65,
        output_tokens=tokens,
        token_source=source,
    )


def test_percentiles_interpolate_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)
    assert percentile([5.0], 99) == 5.0
    summary = describe([4.0, 1.0, 3.0, 2.0])
    assert (summary["mean"], summary["median"], summary["max"], summary["count"]) == (2.5, 2.5, 4.0, 4)
    assert describe([])["p95"] is None


def test_request_formulas() -> None:
    metrics = request_metrics(record(tokens=9))
    assert metrics["ttfr_ms"] == pytest.approx(50.0)
    assert metrics["ttft_ms"] == pytest.approx(200.0)
    assert metrics["e2el_ms"] == pytest.approx(650.0)
    assert metrics["tpot_ms"] == pytest.approx((650.0 - 200.0) / 8)
    assert metrics["itl_ms"] == pytest.approx([100.0] * 4)
    assert request_metrics(record(tokens=1))["tpot_ms"] is None


def test_level_counts_errors_and_uses_only_completed_requests() -> None:
    records = [record(0), record(1), record(2, error="timeout"), record(3, error="http_503")]
    level = summarise_level(4, records, duration_s=2.0)
    assert (level["completed"], level["failed"]) == (2, 2)
    assert level["errors"] == {"timeout": 1, "http_503": 1}
    assert level["total_output_tokens"] == 18
    assert level["output_tokens_per_s"] == 9.0 and level["request_per_s"] == 1.0
    assert level["ttft_ms"]["count"] == 2 and level["itl_ms"]["count"] == 8
    assert level["token_source"] == "usage"
    assert summarise_level(1, [record(0), record(1, source="chunks")], 1.0)["token_source"] == "mixed"


def test_server_tpot_spans_the_decode_steps_after_the_first_token() -> None:
    timed = record()
    # 9 tokens: the first from the prompt pass, then 8 decode steps in predicted_ms.
    timed.server_timings = {"predicted_n": 9, "predicted_ms": 400.0, "predicted_per_token_ms": 44.4}
    assert server_tpot_ms(timed) == pytest.approx(50.0)
    assert server_tpot_ms(record()) is None
    timed_once = record()
    timed_once.server_timings = {"predicted_n": 1, "predicted_ms": 0.001}
    assert server_tpot_ms(timed_once) is None
    level = summarise_level(1, [timed, record(1)], 1.0)
    assert level["server_tpot_ms"]["count"] == 1 and level["server_tpot_ms"]["median"] == 50.0


def level(concurrency: int, ttft_p95: float, tpot_p95: float, failed: int = 0) -> dict[str, Any]:
    return {
        "concurrency": concurrency,
        "completed": 8 - failed,
        "failed": failed,
        "request_per_s": float(concurrency),
        "output_tokens_per_s": 10.0 * concurrency,
        "ttft_ms": {"p95": ttft_p95},
        "tpot_ms": {"p95": tpot_p95},
    }


def test_goodput_is_the_highest_level_inside_both_slos_with_no_failures() -> None:
    levels = [level(1, 100, 20), level(2, 300, 40), level(4, 900, 90), level(8, 2000, 150)]
    result = goodput(levels, 1000, 100)
    assert (result["concurrency"], result["next_level_tested"]) == (4, 8)
    assert result["output_tokens_per_s"] == 40.0
    assert goodput(levels, 1000, 30)["concurrency"] == 1  # TPOT decides
    assert goodput(levels, 50, 100)["concurrency"] is None
    failing = [level(1, 100, 20), level(2, 120, 20, failed=1)]
    assert goodput(failing, 1000, 100)["concurrency"] == 1  # a failure disqualifies a fast level
    assert goodput([level(1, 100, 20), level(2, 100, 20)], 1000, 100)["next_level_tested"] is None


def test_decode_bound() -> None:
    levels = [{"concurrency": 1, "decode_tokens_per_s_median": 40.0}]
    bound = decode_bound(levels, bandwidth_gbps=100.0, model_bytes=2 * 10**9)
    assert bound["tokens_per_s_upper"] == 50.0 and bound["achieved_fraction"] == 0.8
    assert decode_bound(levels, 100.0, None)["tokens_per_s_upper"] is None
    assert (
        decode_bound([{"concurrency": 2, "decode_tokens_per_s_median": 40.0}], 100.0, 10**9)[
            "achieved_fraction"
        ]
        is None
    )


def test_memory_bandwidth_is_measured_and_described() -> None:
    gbps, method = measure_memory_bandwidth(buffer_mib=32, repeats=2)
    assert 0.1 < gbps < 10_000
    assert "32 MiB" in method and "2 x bytes" in method
