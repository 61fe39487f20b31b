# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The closed loop of one concurrency level: in this event loop, or sharded over forked processes.

One event loop reading tens of thousands of chunks a second falls behind: its stamps stay right
(llm_bench_client stamps the kernel's arrival time), but once it lags by more than the gap between
two chunks of a stream those chunks share a stamp, and its sends go out late. So a level can run in
`processes` worker processes, forked before each starts an event loop of its own, each with its
share of the concurrency and of the requests. time.perf_counter is CLOCK_MONOTONIC on Linux, so the
stamps of every process compare. The workers open their connections, say ready, and all start when
the parent closes one pipe; they report when they are done streaming, and only when all are done
read their SSE bodies, so no worker's parsing delays another's stamps. Standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import pickle
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_client import (
    ConnectionPool,
    RequestRecord,
    interpret,
    send_request,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_stats import summarise_client

_READY, _DONE = b"R", b"D"
# One client process per this many streams to start with (more when a level shows the client lagging).
STREAMS_PER_PROCESS = 64


@dataclass
class ProcessUse:
    """One process's share of a level: CPU seconds while it streamed, over how long, its reads."""

    cpu_s: float
    busy_s: float
    lags_ms: Any  # array("d")
    kernel_stamps: int
    read_stamps: int


@dataclass
class LevelRun:
    records: list[RequestRecord]  # in request order
    duration_s: float
    processes: int
    # CPU of the whole client (this process and its workers) during the level.
    cpu_s: float = 0.0
    per_process: list[ProcessUse] = field(default_factory=list)
    opened: int = 0
    stale_retries: int = 0


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def can_fork() -> bool:
    return hasattr(os, "fork")


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


async def _open_connections(pool: ConnectionPool, count: int, timeout_s: float) -> None:
    """Open the level's connections before its clock starts; failures show up in the requests."""
    opened = await asyncio.gather(
        *(asyncio.wait_for(pool.acquire(), timeout_s) for _ in range(count)), return_exceptions=True
    )
    for conn in opened:
        if not isinstance(conn, BaseException):
            pool.release(conn)


async def _closed_loop(
    pool: ConnectionPool, requests: list[tuple[int, bytes]], workers: int, timeout_s: float
) -> list[RequestRecord]:
    """Each of `workers` sends its next request when its last one ends; bodies are read later."""
    queue = iter(requests)  # shared: whichever worker is free takes the next request
    records: list[RequestRecord] = []

    async def worker() -> None:
        for index, request in queue:
            records.append(await send_request(pool, request, index, timeout_s, interpret_now=False))

    await asyncio.gather(*(worker() for _ in range(workers)))
    return records


def _use(pool: ConnectionPool, cpu_s: float, busy_s: float) -> ProcessUse:
    stats = pool.stats
    return ProcessUse(cpu_s, busy_s, stats.lags_ms, stats.kernel_stamps, stats.read_stamps)


async def measure_level(
    pool: ConnectionPool,
    requests: list[bytes],
    concurrency: int,
    timeout_s: float,
    processes: int = 1,
) -> LevelRun:
    """Run one level: `concurrency` workers over `requests`, in `processes` processes."""
    workers = min(concurrency, len(requests))
    processes = max(1, min(processes, workers)) if can_fork() else 1
    if processes > 1:
        try:
            pool._resolve()  # once, here: the workers must not each ask the resolver
        except OSError:
            processes = 1  # every request fails the same way, and is counted, in this loop
    if processes > 1:
        return await _sharded(pool, requests, workers, timeout_s, processes)
    opened, retries = pool.opened, pool.stale_retries
    await _open_connections(pool, workers, timeout_s)
    pool.clock.calibrate()
    pool.stats.reset()
    cpu = time.process_time()
    start = time.perf_counter()
    records = await _closed_loop(pool, list(enumerate(requests)), workers, timeout_s)
    duration = time.perf_counter() - start
    cpu = time.process_time() - cpu
    for record in records:
        interpret(record)
    records.sort(key=lambda record: record.index)
    return LevelRun(
        records=records,
        duration_s=duration,
        processes=1,
        cpu_s=cpu,
        per_process=[_use(pool, cpu, duration)],
        opened=pool.opened - opened,
        stale_retries=pool.stale_retries - retries,
    )


class _Worker:
    """The parent's end of one forked worker: its pid and what it wrote back, read by the loop."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd
        self.buffer = bytearray()
        loop = asyncio.get_running_loop()
        self.ready, self.done, self.finished = (loop.create_future() for _ in range(3))
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._on_readable)
        self.loop = loop

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        self.buffer += data
        if self.buffer[:1] == _READY and not self.ready.done():
            self.ready.set_result(None)
        if self.buffer[1:2] == _DONE and not self.done.done():
            self.done.set_result(None)
        if not data:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            for future in (self.ready, self.done, self.finished):
                if not future.done():
                    future.set_result(None)

    def result(self) -> dict[str, Any]:
        start = 0
        for marker in (_READY, _DONE):
            if self.buffer[start : start + 1] == marker:
                start += 1
        try:
            result = pickle.loads(bytes(self.buffer[start:]))
        except Exception as error:
            raise RuntimeError(f"benchmark worker process {self.pid} ended without its results") from error
        if "error" in result:
            raise RuntimeError(f"benchmark worker process {self.pid} failed:\n{result['error']}")
        return result

    def reap(self) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.reap()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _worker_main(
    pool: ConnectionPool,
    requests: list[tuple[int, bytes]],
    workers: int,
    timeout_s: float,
    out_fd: int,
    go_fd: int,
    read_fd: int,
) -> None:
    """A forked worker: a fresh event loop, its own connections, its share of the level. Never returns."""
    code = 0
    try:
        # The parent's event loop is still "running" in this copy of its thread (Python 3.12 resets
        # this at fork, 3.10 and 3.11 do not); its handlers must not fire here either.
        asyncio._set_running_loop(None)
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        own = ConnectionPool(pool.endpoint, kernel_stamps=pool.kernel_stamps)
        own._addresses = pool._addresses

        async def share() -> dict[str, Any]:
            await _open_connections(own, workers, timeout_s)
            _write_all(out_fd, _READY)
            os.read(go_fd, 1)  # blocks until the parent closes the pipe: every worker starts at once
            own.clock.calibrate()
            cpu, start = time.process_time(), time.perf_counter()
            records = await _closed_loop(own, requests, workers, timeout_s)
            finished = time.perf_counter()
            cpu = time.process_time() - cpu
            _write_all(out_fd, _DONE)
            os.read(read_fd, 1)  # the bodies are read once every worker has stopped streaming
            for record in records:
                interpret(record)
            await own.close()
            return {
                "records": records,
                "finished": finished,
                "use": _use(own, cpu, finished - start),
                "opened": own.opened,
                "stale_retries": own.stale_retries,
            }

        result = loop.run_until_complete(share())
    except BaseException:
        result, code = {"error": traceback.format_exc()}, 1
    try:
        _write_all(out_fd, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        os._exit(code)


async def _sharded(
    pool: ConnectionPool, requests: list[bytes], workers: int, timeout_s: float, processes: int
) -> LevelRun:
    shares = _split(workers, processes)
    counts = [len(requests) * share // workers for share in shares]
    for index in range(len(requests) - sum(counts)):
        counts[index] += 1
    numbered = list(enumerate(requests))
    go_read, go_write = os.pipe()
    read_read, read_write = os.pipe()
    children: list[_Worker] = []
    parent_cpu = time.process_time()
    try:
        offset = 0
        for share, count in zip(shares, counts, strict=True):
            chunk, offset = numbered[offset : offset + count], offset + count
            out_read, out_write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(out_read)
                os.close(go_write)
                os.close(read_write)
                _worker_main(pool, chunk, share, timeout_s, out_write, go_read, read_read)
            os.close(out_write)
            children.append(_Worker(pid, out_read))
        os.close(go_read)
        os.close(read_read)
        await asyncio.gather(*(child.ready for child in children))
        start = time.perf_counter()
        os.close(go_write)
        go_write = -1
        await asyncio.gather(*(child.done for child in children))
        os.close(read_write)
        read_write = -1
        await asyncio.gather(*(child.finished for child in children))
        results = [child.result() for child in children]
    except BaseException:
        for child in children:
            child.kill()
        raise
    finally:
        for fd in (go_write, read_write):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
    for child in children:
        child.reap()
    records = [record for result in results for record in result["records"]]
    records.sort(key=lambda record: record.index)
    uses = [result["use"] for result in results]
    duration = max(result["finished"] for result in results) - start
    return LevelRun(
        records=records,
        duration_s=duration,
        processes=processes,
        cpu_s=(time.process_time() - parent_cpu) + sum(use.cpu_s for use in uses),
        per_process=uses,
        opened=sum(result["opened"] for result in results),
        stale_retries=sum(result["stale_retries"] for result in results),
    )


def auto_processes(concurrency: int, streams_per_process: int, cpus: int) -> int:
    """A first guess: one process per `streams_per_process` streams, no more than the CPUs."""
    return max(1, min(cpus, math.ceil(concurrency / streams_per_process)))


class ClientPlan:
    """How many client processes each level gets; measures a level again when its client lagged.

    fixed: a number of processes for every level, or None to choose: one per STREAMS_PER_PROCESS
    streams (at most the CPUs, never fewer than the level before), and when a level's client was
    saturated (a process over CLIENT_CPU_WARN_CORES, or stamp lag over CLIENT_LAG_WARN_MS with a
    process over half that CPU) while it could have had more processes, the level runs once more
    over twice as many. Lag on a client that used little CPU is the machine's: it is reported, not
    rerun.
    """

    def __init__(self, fixed: int | None = None) -> None:
        self.fixed = fixed
        self.cpus = available_cpus() if can_fork() else 1
        self.processes = fixed or 1
        self.opened = 0  # connections opened by worker processes (a pool counts its own)
        self.retried = 0

    async def level(
        self,
        pool: ConnectionPool,
        make_requests: Callable[[], list[bytes]],
        concurrency: int,
        timeout_s: float,
    ) -> tuple[LevelRun, dict[str, Any]]:
        if self.fixed is None:
            self.processes = max(self.processes, auto_processes(concurrency, STREAMS_PER_PROCESS, self.cpus))
        requests = make_requests()
        run = await self._measure(pool, requests, concurrency, timeout_s)
        client = client_summary(run)
        room = min(self.cpus, concurrency, len(requests))
        if self.fixed is None and client["saturated"] and run.processes < room:
            first = {
                key: client[key]
                for key in ("processes", "cpu_cores_per_process_max", "stamp_lag_ms", "warnings")
            }
            self.processes = min(room, 2 * run.processes)
            run = await self._measure(pool, make_requests(), concurrency, timeout_s)
            client = client_summary(run, rerun_from=first)
        return run, client

    async def _measure(
        self, pool: ConnectionPool, requests: list[bytes], concurrency: int, timeout_s: float
    ) -> LevelRun:
        run = await measure_level(pool, requests, concurrency, timeout_s, self.processes)
        if run.processes > 1:
            self.opened += run.opened
            self.retried += run.stale_retries
        return run


def client_summary(run: LevelRun, rerun_from: dict[str, Any] | None = None) -> dict[str, Any]:
    return summarise_client(run.processes, run.duration_s, run.cpu_s, run.per_process, rerun_from)
