#!/usr/bin/env python3
"""How accurately does the benchmark client report what a server did, and what does it cost?

Starts the scheduled SSE stand-in (tests/standins/scheduled_sse_server.py, --server-workers
processes) and drives it with the llm_bench client as run_benchmark does (llm_bench_load.ClientPlan:
client processes chosen per level, a level measured again when its client lagged) at 1, 16, 64 and
256 streams, at two offered chunk rates (one token per chunk; offered rate = streams / interval while
every stream streams). The stand-in records when it really wrote each chunk (the monotonic clock just
before and just after the write), so per request the truth is:
  TTFT = write of the first content chunk - the client's send stamp,
  TPOT = (write of the last content chunk - write of the first) / (tokens - 1),
and the error is what the client reported minus that (0 when inside the write's window). Printed per
row: medians of truth and client, their difference (ms and %: what the results would be off by),
p99 over requests of the per-request error, whether both differences meet the goal (within 3 % or
2 ms), the client's stamp lag (read time - kernel arrival time, per read) and its CPU while
streaming (all processes, in cores, and the busiest process).

--compare also measures the heaviest rows with the stamping and sharding switched off one at a time
(kernel vs read-time stamps, one process vs several), to show which matters.

Run: .venv/bin/python benchmarks/bench_client_accuracy.py [--host 127.0.0.1] [--compare]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_load import (  # noqa: E402
    ClientPlan,
    LevelRun,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_stats import (  # noqa: E402
    request_metrics,
)

SERVER = REPO / "tests" / "standins" / "scheduled_sse_server.py"
TTFR_MS, TTFT_MS = 5.0, 30.0
STREAM_S = 0.4  # about how long each request streams
WRITE_EVERY_MS = 1.0  # the stand-in writes to one stream at most this often (batches below it)
WARMUP = 2


def start_server(host: str, workers: int, interval_ms: float) -> tuple[subprocess.Popen[str], str]:
    schedule = {
        "--host": host,
        "--ttfr-ms": TTFR_MS,
        "--ttft-ms": TTFT_MS,
        "--interval-ms": interval_ms,
        "--tokens-per-chunk": 1,
        "--write-every-ms": WRITE_EVERY_MS,
        "--workers": workers,
    }
    arguments = [str(part) for pair in schedule.items() for part in pair]
    process = subprocess.Popen([sys.executable, str(SERVER), *arguments], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening "):
        process.kill()
        raise SystemExit(f"the stand-in did not start: {line!r}")
    return process, line.split()[1]


def seen(base_url: str, expected: int) -> dict[int, dict[str, Any]]:
    """The stand-in's entries by request number; its workers add theirs as their responses end."""
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(base_url + "/_seen", timeout=10) as response:
            entries = json.load(response)["requests"]
        by_index = {
            int(e["prompt"].rsplit("Request ", 1)[1].split(":", 1)[0].rsplit("-", 1)[1]): e for e in entries
        }
        if len(by_index) >= expected or time.monotonic() > deadline:
            return by_index
        time.sleep(0.05)


def outside(value: float, low: float, high: float) -> float:
    """How far a value lies outside [low, high]: 0 inside, negative below, positive above."""
    return min(0.0, value - low) + max(0.0, value - high)


def compare(
    records: list[RequestRecord], by_index: dict[int, dict[str, Any]], base: int, tokens: int
) -> dict[str, Any]:
    """Per request, the client's figures against the stand-in's; record i was request base + i."""
    ttft_truth, tpot_truth, ttft_client, tpot_client, ttft_err, tpot_err, late = [], [], [], [], [], [], 0
    for record in records:
        entry = by_index.get(base + record.index)
        if not record.ok or entry is None or "last_content_at" not in entry:
            continue
        late += entry["buffered_writes"] > 0
        reported = request_metrics(record)
        sent = record.sent
        first = ((entry["first_content_from"] - sent) * 1000, (entry["first_content_at"] - sent) * 1000)
        last = ((entry["last_content_from"] - sent) * 1000, (entry["last_content_at"] - sent) * 1000)
        steps = tokens - 1
        tpot_window = ((last[0] - first[1]) / steps, (last[1] - first[0]) / steps)
        ttft_truth.append(first[1])
        tpot_truth.append((last[1] - first[1]) / steps)
        ttft_client.append(reported["ttft_ms"])
        tpot_client.append(reported["tpot_ms"])
        ttft_err.append(outside(reported["ttft_ms"], *first))
        tpot_err.append(outside(reported["tpot_ms"], *tpot_window))
    if not ttft_err:
        return {}
    result = {"buffered": late}
    for name, truth, client, errors in (
        ("ttft", ttft_truth, ttft_client, ttft_err),
        ("tpot", tpot_truth, tpot_client, tpot_err),
    ):
        absolute = sorted(abs(error) for error in errors)
        result[f"{name}_truth"], result[f"{name}_client"] = (
            statistics.median(truth),
            statistics.median(client),
        )
        # What the results would show (the client's median) against the truth's median.
        result[f"{name}_err"] = result[f"{name}_client"] - result[f"{name}_truth"]
        result[f"{name}_err_p99"] = absolute[round(0.99 * (len(absolute) - 1))]
    return result


async def measure(
    base_url: str, streams: int, requests: int, tokens: int, processes: int | None, kernel: bool
) -> tuple[LevelRun, dict[str, Any], Workload]:
    config = BenchConfig(base_url=base_url, model="stand-in", output_tokens=tokens, input_tokens=32)
    endpoint = parse_endpoint(base_url)
    workload, pool = Workload(config, endpoint), ConnectionPool(endpoint, kernel_stamps=kernel)
    plan = ClientPlan(processes)
    try:
        await run_level(pool, workload.requests(WARMUP), WARMUP, 30.0)  # not counted
        run, client = await plan.level(pool, lambda: workload.requests(requests), streams, 60.0)
    finally:
        await pool.close()
    return run, client, workload


def pct(error: float, truth: float) -> str:
    return f"{error:+.2f} ({error / truth * 100:+.1f}%)"


def row(
    args: argparse.Namespace, label: str, streams: int, rate: int, processes: int | None, kernel: bool
) -> tuple[str, ...]:
    interval_ms = streams / rate * 1000.0
    tokens = max(32, min(2000, round(STREAM_S * 1000.0 / interval_ms)))
    requests = max(6, 2 * streams)
    server, base_url = start_server(args.host, args.server_workers, interval_ms)
    try:
        run, client, workload = asyncio.run(measure(base_url, streams, requests, tokens, processes, kernel))
        by_index = seen(base_url, workload.issued)
    finally:
        server.terminate()
        server.wait(timeout=10)
    # The run's requests were the last issued (a level measured again comes after its first try).
    result = compare(run.records, by_index, workload.issued - requests, tokens)
    lag = client["stamp_lag_ms"]
    done = sum(record.ok for record in run.records)
    if not result:
        return (label, str(streams), f"{rate}", f"{interval_ms:.2f}", str(tokens), str(run.processes), f"{done}/{len(run.records)}") + ("-",) * 12  # fmt: skip
    itl = sorted(gap for record in run.records if record.ok for gap in request_metrics(record)["itl_ms"])
    itl_p99 = itl[round(0.99 * (len(itl) - 1))] if itl else float("nan")
    goal = all(
        abs(result[err]) <= max(0.03 * result[truth], 2.0)
        for err, truth in (("ttft_err", "ttft_truth"), ("tpot_err", "tpot_truth"))
    )
    return (
        label,
        str(streams),
        f"{rate}",
        f"{interval_ms:.2f}",
        str(tokens),
        str(run.processes) + ("*" if "rerun_from" in client else ""),
        f"{done}/{len(run.records)}" + (f" b{result['buffered']}" if result["buffered"] else ""),
        f"{result['ttft_truth']:.2f}",
        f"{result['ttft_client']:.2f}",
        pct(result["ttft_err"], result["ttft_truth"]),
        f"{result['ttft_err_p99']:.2f}",
        f"{result['tpot_truth']:.3f}",
        f"{result['tpot_client']:.3f}",
        pct(result["tpot_err"], result["tpot_truth"]),
        f"{result['tpot_err_p99']:.3f}",
        f"{itl_p99:.2f}",
        "yes" if goal else "NO",
        "-" if lag["median"] is None else f"{lag['median']:.2f}/{lag['p99']:.2f}/{lag['max']:.1f}",
        f"{client['cpu_cores']:.2f}/{client['cpu_cores_per_process_max']:.2f}",
    )


def print_table(rows: list[tuple[str, ...]]) -> None:
    header = (
        "client", "streams", "chunks/s", "itv ms", "tokens", "procs", "ok", "TTFT truth", "TTFT client",
        "TTFT err ms", "|err| p99", "TPOT truth", "TPOT client", "TPOT err ms", "|err| p99", "ITL p99", "goal",
        "lag p50/p99/max",
        "CPU all/max",
    )  # fmt: skip
    table = [header, *rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)), flush=True)


def main(args: argparse.Namespace) -> None:
    started = time.monotonic()
    print(f"uptime: {os.getloadavg()} (load 1/5/15 min), {os.cpu_count()} CPUs")
    print(
        f"schedule: TTFR {TTFR_MS} ms, TTFT {TTFT_MS} ms, one token per chunk, about {STREAM_S} s of streaming "
        f"per request, 2 requests per stream, stand-in writes a stream at most every {WRITE_EVERY_MS} ms "
        f"({args.server_workers} stand-in processes)"
    )
    print("TTFT = sent -> first content chunk; TPOT = (E2EL - TTFT) / (output_tokens - 1); medians in ms")
    rows = [
        row(args, "kernel+auto", streams, rate, None, True) for rate in args.rates for streams in args.streams
    ]
    print_table(rows)
    if args.compare:
        print("\nthe same, with stamping and sharding switched off one at a time:")
        modes = (("kernel+auto", None, True), ("read+auto", None, False), ("kernel+1proc", 1, True), ("read+1proc", 1, False))  # fmt: skip
        print_table(
            [
                row(args, label, streams, max(args.rates), processes, kernel)
                for streams in (16, 256)
                for label, processes, kernel in modes
            ]
        )
    print(
        "truth = the stand-in's write times against the client's send stamp; err = client median - truth median "
        "(% of the truth); |err| p99 = over requests, 0 inside the write's window; goal: err within 3 % or 2 ms"
    )
    print(
        "ITL p99 = the client's, pooled (the stand-in writes every interval, or every 1 ms with several chunks); "
        "b<n> after ok = requests the stand-in could not write at once (their truth is later than recorded)"
    )
    print(
        "procs = client processes (* = measured again after the first try's client lagged); lag = read time - "
        "kernel arrival time per read, ms; CPU = client cores while streaming, all processes / busiest process"
    )
    print(f"uptime: {os.getloadavg()} (load 1/5/15 min); took {time.monotonic() - started:.0f} s")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address for the stand-in")
    parser.add_argument(
        "--streams", type=lambda text: [int(x) for x in text.split(",")], default=[1, 16, 64, 256]
    )
    parser.add_argument(
        "--rates", type=lambda text: [int(x) for x in text.split(",")], default=[12800, 50000]
    )
    parser.add_argument("--server-workers", type=int, default=2)
    parser.add_argument("--compare", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    main(parse_args())
