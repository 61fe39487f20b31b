"""The arithmetic behind the results: percentiles, per-request formulas, goodput, decode bound."""

from __future__ import annotations

from array import array
from typing import Any

import pytest

from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_client import RequestRecord
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_load import ProcessUse
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_stats import (
    decode_bound,
    describe,
    goodput,
    level_goodput,
    max_concurrency_within_slo,
    percentile,
    request_metrics,
    server_tpot_ms,
    summarise_client,
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
        first_answer=10.2,
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


def test_max_concurrency_within_slo_is_the_highest_level_inside_both_p95s_with_no_failures() -> None:
    levels = [level(1, 100, 20), level(2, 300, 40), level(4, 900, 90), level(8, 2000, 150)]
    result = max_concurrency_within_slo(levels, 1000, 100)
    assert (result["concurrency"], result["next_level_tested"]) == (4, 8)
    assert result["output_tokens_per_s"] == 40.0
    assert max_concurrency_within_slo(levels, 1000, 30)["concurrency"] == 1  # TPOT decides
    assert max_concurrency_within_slo(levels, 50, 100)["concurrency"] is None
    failing = [level(1, 100, 20), level(2, 120, 20, failed=1)]
    assert max_concurrency_within_slo(failing, 1000, 100)["concurrency"] == 1  # a failure disqualifies
    invalid = [
        level(1, 100, 20),
        {**level(2, 100, 20), "structured": {"checked": 8, "valid": 7, "invalid": 1}},
    ]
    assert max_concurrency_within_slo(invalid, 1000, 100)["concurrency"] == 1  # so does an invalid reply
    assert (
        max_concurrency_within_slo([level(1, 100, 20), level(2, 100, 20)], 1000, 100)["next_level_tested"]
        is None
    )


def test_goodput_counts_each_request_against_every_slo() -> None:
    # record(): TTFT 200 ms, TPOT (650 - 200) / 8 = 56.25 ms with 9 tokens.
    late = record(1)
    late.content_times, late.end = [10.9, 10.95], 11.2  # TTFT 900 ms, TPOT (1200 - 900) / 8 = 37.5 ms
    slow = record(2, tokens=3)  # TPOT (650 - 200) / 2 = 225 ms
    one_token = record(3, tokens=1)  # no TPOT: judged on TTFT alone
    invalid = record(4)
    invalid.valid = False  # a structured reply that did not validate
    records = [record(0), late, slow, one_token, invalid, record(5, error="timeout")]
    assert level_goodput(records, 2.0, 1000, 100) == {"good_requests": 3, "goodput_request_per_s": 1.5}
    assert level_goodput(records, 2.0, 500, 100)["good_requests"] == 2  # the late one is out
    assert level_goodput(records, 2.0, 1000, 50)["good_requests"] == 2  # record(0)'s 56 ms TPOT is out
    assert level_goodput([], 0.0, 1000, 100)["goodput_request_per_s"] is None


def test_goodput_is_the_level_with_the_most_good_requests_per_second() -> None:
    levels = [
        {**level(1, 100, 20), "requests": 8, "good_requests": 8, "goodput_request_per_s": 2.0},
        {**level(2, 300, 40), "requests": 8, "good_requests": 8, "goodput_request_per_s": 3.5},
        {**level(4, 900, 90), "requests": 8, "good_requests": 5, "goodput_request_per_s": 3.5},
        {**level(8, 2000, 150), "requests": 8, "good_requests": 1, "goodput_request_per_s": 0.4},
    ]
    result = goodput(levels, 1000, 100)
    # A tie goes to the lower concurrency: the same good requests per second with fewer in flight.
    assert (result["request_per_s"], result["concurrency"], result["good_requests"]) == (3.5, 2, 8)
    assert goodput([level(1, 100, 20)], 1000, 100)["request_per_s"] is None  # no per-level figure


def test_decode_bound() -> None:
    levels = [{"concurrency": 1, "decode_tokens_per_s_median": 40.0}]
    bound = decode_bound(levels, 100.0, 2 * 10**9, source="measured_cpu_read", method="read-only: 2 threads")
    assert bound["tokens_per_s_upper"] == 50.0 and bound["achieved_fraction"] == 0.8
    assert bound["memory_bandwidth_gbps"] == 100.0 and bound["source"] == "measured_cpu_read"
    assert bound["method"] == "read-only: 2 threads" and bound["warning"] is None
    assert "weights_bytes_per_gpu" not in bound
    assert decode_bound(levels, 100.0, None)["tokens_per_s_upper"] is None
    assert decode_bound(levels, None, 10**9)["note"] == "needs model_bytes and a memory bandwidth"
    no_single = decode_bound([{"concurrency": 2, "decode_tokens_per_s_median": 40.0}], 100.0, 10**9)
    assert no_single["achieved_fraction"] is None and no_single["warning"] is None
    assert "concurrency 1 was not tested" in no_single["note"]


def test_decode_bound_over_tensor_parallel_gpus_names_each_gpus_share() -> None:
    levels = [{"concurrency": 1, "decode_tokens_per_s_median": 150.0}]
    bound = decode_bound(levels, 4 * 3350.0, 4 * 16 * 10**9, source="gpu_datasheet", gpus_used=4)
    assert bound["weights_bytes_per_gpu"] == 16 * 10**9
    assert bound["tokens_per_s_upper"] == 209.375 and bound["achieved_fraction"] == pytest.approx(
        0.7164, abs=1e-4
    )


def test_a_stream_faster_than_its_bound_gets_a_warning_not_a_fraction() -> None:
    """The module's 7B example on a GPU node with the host CPU's figure used to say 47.31 (4731 %)."""
    levels = [{"concurrency": 1, "decode_tokens_per_s_median": 172.4}]
    bound = decode_bound(levels, 18.0, 4920734176, source="measured_cpu_read")
    assert bound["achieved_fraction"] is None
    assert bound["tokens_per_s_upper"] == 3.658 and bound["single_stream_decode_tokens_per_s"] == 172.4
    assert bound["warning"].startswith(
        "the bound is wrong, not the server: one stream decoded 172.4 tokens/s, 47.13 x"
    )
    assert "measured on the host's CPU" in bound["warning"] and "mixture-of-experts" in bound["warning"]
    given = decode_bound(levels, 18.0, 4920734176, source="given")["warning"]
    assert "check the given memory_bandwidth_gbps" in given


def test_within_the_tolerance_a_fraction_above_1_is_kept() -> None:
    levels = [{"concurrency": 1, "decode_tokens_per_s_median": 52.0}]
    assert decode_bound(levels, 100.0, 2 * 10**9)["achieved_fraction"] == 1.04
    assert decode_bound(levels, 100.0, 2 * 10**9)["warning"] is None
    over = [{"concurrency": 1, "decode_tokens_per_s_median": 53.0}]
    assert decode_bound(over, 100.0, 2 * 10**9)["achieved_fraction"] is None


def test_ttfat_after_reasoning_and_null_without_an_answer() -> None:
    thinking = record()
    thinking.reasoning, thinking.first_answer = True, 10.4  # two reasoning chunks, then the answer
    assert request_metrics(thinking)["ttft_ms"] == pytest.approx(200.0)
    assert request_metrics(thinking)["ttfat_ms"] == pytest.approx(400.0)
    assert request_metrics(record())["ttfat_ms"] == pytest.approx(200.0)  # no reasoning: = TTFT
    unanswered = record(1)
    unanswered.reasoning, unanswered.first_answer = True, None
    level = summarise_level(3, [thinking, record(2), unanswered], 1.0)
    assert level["ttfat_ms"]["count"] == 2 and level["ttft_ms"]["count"] == 3
    assert (level["requests_with_reasoning"], level["requests_without_answer"]) == (2, 1)


def test_levels_report_the_prompt_tokens_the_server_counted_and_cached() -> None:
    counted = [record(n) for n in range(3)]
    for n, one in enumerate(counted):
        one.prompt_tokens, one.cached_tokens = 160 + n, 24
    level = summarise_level(1, [*counted, record(3), record(4, error="timeout")], 1.0)
    assert level["prompt_tokens"]["count"] == 3 and level["prompt_tokens"]["mean"] == 161.0
    assert level["prompt_tokens"]["median"] == 161.0 and level["cached_prompt_tokens"]["mean"] == 24.0
    assert summarise_level(1, [record()], 1.0)["cached_prompt_tokens"] == describe([])


def use(cpu_s: float, lags: list[float], busy_s: float = 1.0, kernel: bool = True) -> ProcessUse:
    return ProcessUse(cpu_s, busy_s, array("d", lags), len(lags) if kernel else 0, 0 if kernel else 5)


def test_the_clients_own_cpu_and_stamp_lag_with_warnings_past_the_thresholds() -> None:
    quiet = summarise_client(2, 2.0, 0.4, [use(0.1, [0.1] * 99 + [1.0]), use(0.2, [0.2] * 100)])
    assert (quiet["processes"], quiet["cpu_cores"], quiet["cpu_cores_per_process_max"]) == (2, 0.2, 0.2)
    assert quiet["stamps"] == "kernel" and quiet["stamp_lag_ms"]["count"] == 200
    assert quiet["stamp_lag_ms"]["max"] == 1.0 and quiet["warnings"] == [] and not quiet["saturated"]
    busy = summarise_client(1, 1.0, 0.8, [use(0.8, [0.1] * 100)])
    assert busy["saturated"] and "0.80 of a core" in busy["warnings"][0]
    lagging = summarise_client(1, 1.0, 0.5, [use(0.5, [0.1] * 90 + [3.0] * 10)])
    assert lagging["saturated"] and lagging["stamp_lag_ms"]["p99"] == 3.0
    assert "3.0 ms after they arrived" in lagging["warnings"][0]
    machine = summarise_client(1, 1.0, 0.05, [use(0.05, [3.0] * 10)])
    assert not machine["saturated"] and "the machine was busy" in machine["warnings"][0]
    unstamped = summarise_client(1, 1.0, 0.05, [use(0.05, [], kernel=False)])
    assert unstamped["stamps"] == "read" and unstamped["stamp_lag_ms"]["p99"] is None
    assert unstamped["warnings"] == []
