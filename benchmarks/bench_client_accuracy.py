#!/usr/bin/env python3
"""How accurately does the benchmark client report what a server did, and what does it cost?

Starts the scheduled SSE stand-in (tests/standins/scheduled_sse_server.py) in its own process and
drives it with the llm_bench client at concurrency 1, 16 and 256. Prints, per level, the TTFT and
TPOT the server was scheduled to produce, what the server really produced (it records when it
wrote each chunk: a loaded machine wakes it late), what the client reported, the % error against the
schedule, and the client's CPU time per streamed token. One token per chunk, so the client handles
the most chunks a server can send. Finishes in well under two minutes.

Run: .venv/bin/python benchmarks/bench_client_accuracy.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".collections"))  # the venv's .pth does this; plain python needs it

from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench import (  # noqa: E402
    BenchConfig,
    Workload,
    run_level,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_client import (  # noqa: E402
    ConnectionPool,
    RequestRecord,
    parse_endpoint,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_stats import (  # noqa: E402
    summarise_level,
)

SERVER = REPO / "tests" / "standins" / "scheduled_sse_server.py"
TTFR_MS, TTFT_MS, INTERVAL_MS, TOKENS = 20.0, 100.0, 20.0, 32
# One token per chunk: E2EL - TTFT = (TOKENS - 1) intervals, so TPOT is the interval.
SCHEDULED_TPOT_MS = INTERVAL_MS
# (concurrency, measured requests): two rounds per worker at the higher levels.
LEVELS = ((1, 8), (16, 32), (256, 512))
WARMUP = 4


def start_server() -> tuple[subprocess.Popen[str], str]:
    schedule = [
        "--ttfr-ms",
        TTFR_MS,
        "--ttft-ms",
        TTFT_MS,
        "--interval-ms",
        INTERVAL_MS,
        "--tokens-per-chunk",
        1,
    ]
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", "0", *map(str, schedule)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, process.stdout.readline().split()[1]


def server_actuals(base_url: str, records: list[RequestRecord]) -> tuple[float, float, list[float]]:
    """Median first-content time and TPOT as the server really wrote them, and per measured request
    the client's own delay: its first-content stamp minus the server's write of that chunk."""
    with urllib.request.urlopen(base_url + "/_seen", timeout=10) as response:
        seen = json.load(response)["requests"]
    # The prompt starts "Request <run>-<index>.", which ties a server entry to the client's record.
    by_index = {int(entry["prompt"].split(".", 1)[0].rsplit("-", 1)[1]): entry for entry in seen}
    # Record indexes count from 0 within the level; the server saw the warm-up first.
    measured = [by_index[WARMUP + record.index] for record in records]
    ttft = statistics.median(entry["first_content_ms"] for entry in measured)
    tpot = statistics.median((e["last_content_ms"] - e["first_content_ms"]) / (TOKENS - 1) for e in measured)
    delays = [
        (r.content_times[0] - by_index[WARMUP + r.index]["first_content_at"]) * 1000.0
        for r in records
        if r.ok
    ]
    return ttft, tpot, delays


async def measure(
    base_url: str, concurrency: int, requests: int
) -> tuple[dict[str, Any], float, list[RequestRecord]]:
    config = BenchConfig(base_url=base_url, model="stand-in", output_tokens=TOKENS, input_tokens=32)
    endpoint = parse_endpoint(base_url)
    workload, pool = Workload(config, endpoint), ConnectionPool(endpoint)
    try:
        await run_level(pool, workload.requests(WARMUP), WARMUP, 30.0)  # not counted
        cpu_start = time.process_time()
        records, duration = await run_level(pool, workload.requests(requests), concurrency, 60.0)
        level = summarise_level(concurrency, records, duration)
        cpu = time.process_time() - cpu_start
    finally:
        await pool.close()
    return level, cpu, records


def error_pct(measured: float, scheduled: float) -> str:
    return f"{(measured - scheduled) / scheduled * 100:+.2f}%"


def main() -> None:
    print(
        f"schedule: TTFR {TTFR_MS} ms, TTFT {TTFT_MS} ms, one token per chunk every {INTERVAL_MS} ms, "
        f"{TOKENS} tokens -> TPOT {SCHEDULED_TPOT_MS:.2f} ms"
    )
    print("TTFT = sent -> first content chunk; TPOT = (E2EL - TTFT) / (output_tokens - 1); medians in ms")
    header = (
        "conc", "done", "fail", "TTFT sched", "TTFT server", "TTFT client", "TTFT err",
        "TPOT sched", "TPOT server", "TPOT client", "TPOT err", "read delay p50/max",
        "client CPU us/token",
    )  # fmt: skip
    rows = [header]
    for concurrency, requests in LEVELS:
        process, base_url = start_server()
        try:
            level, cpu, records = asyncio.run(measure(base_url, concurrency, requests))
            server_ttft, server_tpot, delays = server_actuals(base_url, records)
        finally:
            process.terminate()
            process.wait(timeout=10)
        ttft, tpot = level["ttft_ms"]["median"], level["tpot_ms"]["median"]
        rows.append(
            (
                str(concurrency),
                str(level["completed"]),
                str(level["failed"]),
                f"{TTFT_MS:.2f}",
                f"{server_ttft:.2f}",
                f"{ttft:.2f}",
                error_pct(ttft, TTFT_MS),
                f"{SCHEDULED_TPOT_MS:.2f}",
                f"{server_tpot:.2f}",
                f"{tpot:.2f}",
                error_pct(tpot, SCHEDULED_TPOT_MS),
                f"{statistics.median(delays):.2f} / {max(delays):.2f}",
                f"{cpu / max(1, level['total_output_tokens']) * 1e6:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    print("TTFT server = when the server really wrote the first content chunk (after reading the request)")
    print("read delay = client's first-content stamp - server's write of it (same monotonic clock), ms")
    print("the rest of TTFT client - TTFT server is the request waiting to be read by a busy server")


if __name__ == "__main__":
    main()
