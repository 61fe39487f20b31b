"""Control plane figures, the ones issue 9 sets goals for:
- POST /api/runs -> first SSE event of that run, on an idle server and while 50 live-log readers follow
  another run (goal: < 1 s; it includes ansible-playbook's own start-up);
- p95 of GET /api/runs while 50 live-log readers follow a streaming run (goal: < 100 ms);
- and the events per second the SQLite store sustains.

Starts `animaflow serve` on a free 127.0.0.1 port with a throw-away state dir and generated playbooks
(the figures are about the control plane, not about what a playbook does), prints the figures, stops it.
    .venv/bin/python benchmarks/control_api.py
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from animaflow_control.services.store import Store, now

ROOT = Path(__file__).resolve().parents[1]
LATENCY_RUNS = 8
STREAM_READERS = 50
RUN_LIST_GETS = 200
# One admin clicking through the history, and ten dashboards refreshing at the same moment.
RUN_LIST_CONCURRENCY = (1, 10)
STORE_EVENTS = 5000

INVENTORY = """farm:
  vars: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
  hosts:
    local: {}
    local2: {}
"""
QUICK = """- hosts: farm
  gather_facts: false
  tasks:
    - ansible.builtin.debug: {msg: quick}
"""
# About 400 item events over ~20 s: a run that keeps streaming while the readers load the API.
CHATTY = """- hosts: farm
  gather_facts: false
  tasks:
    - ansible.builtin.debug: {msg: "item {{ item }}"}
      loop: "{{ range(400) | list }}"
      loop_control: {pause: 0.045}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(work: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    playbooks = work / "playbooks"
    playbooks.mkdir()
    (playbooks / "facts.yml").write_text(QUICK)
    (playbooks / "status.yml").write_text(CHATTY)
    (work / "hosts.yml").write_text(INVENTORY)
    port = free_port()
    env = {
        **os.environ,
        "ANIMAFLOW_INVENTORY": str(work / "hosts.yml"),
        "ANIMAFLOW_STATE_DIR": str(work / "state"),
        "ANIMAFLOW_PLAYBOOK_DIR": str(playbooks),
        "ANIMAFLOW_PORT": str(port),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "animaflow_control.cli", "serve"],
        env=env,
        stdout=(work / "server.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        server.terminate()
        raise SystemExit(f"server did not start: {(work / 'server.log').read_text()}")
    token = (work / "state" / "control" / "admin-token").read_text().strip()
    return server, base, {"Authorization": f"Bearer {token}"}


async def first_event_ms(client: httpx.AsyncClient) -> float:
    """One click: POST a quick run on local2, then time its first SSE event."""
    started = time.perf_counter()
    run_id = (await client.post("/api/runs", json={"action": "facts", "hosts": ["local2"]})).json()["id"]
    first = None
    async with client.stream("GET", f"/api/runs/{run_id}/events") as stream:
        async for line in stream.aiter_lines():
            if first is None and line == "event: ansible":
                first = time.perf_counter() - started
            if line == "event: end":
                break
    assert first is not None, f"run {run_id} streamed no event"
    return first * 1000


async def follow_raw(host: str, port: int, authorization: str, run_id: str) -> int:
    """One live-log reader: the SSE request on a plain socket; returns the ansible events it got."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET /api/runs/{run_id}/events HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {authorization}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    count = 0
    while line := await reader.readline():
        count += line == b"event: ansible\n"
        if line == b"event: end\n":
            break
    writer.close()
    return count


def follow_in_process(base: str, authorization: str, run_id: str, readers: int, results: object) -> None:
    host, port = base.removeprefix("http://").split(":")

    async def follow_all() -> list[int]:
        return list(
            await asyncio.gather(
                *(follow_raw(host, int(port), authorization, run_id) for _ in range(readers))
            )
        )

    results.put(asyncio.run(follow_all()))  # type: ignore[attr-defined]


async def figures(base: str, headers: dict[str, str]) -> dict[str, object]:
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=60, limits=httpx.Limits(max_connections=STREAM_READERS + 20)
    ) as client:
        idle = [await first_event_ms(client) for _ in range(LATENCY_RUNS)]

        run_id = (await client.post("/api/runs", json={"action": "status", "hosts": ["local"]})).json()["id"]
        # The readers live in a process of their own, on raw sockets: 50 streams parsed by httpx in this
        # event loop would delay the very responses this measures.
        results: multiprocessing.Queue = multiprocessing.Queue()
        readers = multiprocessing.Process(
            target=follow_in_process, args=(base, headers["Authorization"], run_id, STREAM_READERS, results)
        )
        readers.start()
        await asyncio.sleep(2.0)  # the run is streaming to every reader
        errors = 0

        async def list_runs(queue: list[int], latencies: list[float]) -> None:
            nonlocal errors
            while queue:
                queue.pop()
                started = time.perf_counter()
                try:
                    errors += (await client.get("/api/runs")).status_code != 200
                except httpx.HTTPError:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        listing: dict[int, list[float]] = {}
        for concurrency in RUN_LIST_CONCURRENCY:
            queue, listing[concurrency] = list(range(RUN_LIST_GETS)), []
            await asyncio.gather(*(list_runs(queue, listing[concurrency]) for _ in range(concurrency)))
        # Clicks while the readers follow: the last one, after the GETs, is kept apart from them.
        loaded_first = [await first_event_ms(client) for _ in range(3)]
        still_running = (await client.get(f"/api/runs/{run_id}")).json()["state"] == "running"
        streamed = await asyncio.to_thread(results.get, True, 180)
        readers.join(10)
    return {
        "idle_first": idle,
        "loaded_first": loaded_first,
        "list": listing,
        "errors": errors,
        "streamed": streamed,
        "run_still_streaming": still_running,
    }


def store_events_per_second(work: Path) -> float:
    store = Store(work / "bench.db")
    store.create_run(
        {
            "id": "bench0000000",
            "action": "status",
            "backend": None,
            "targets": ["local"],
            "hosts": ["local"],
            "version": None,
            "model": None,
            "state": "running",
            "created_by": "bench",
            "created_at": now(),
        }
    )
    event = {
        "event": "runner_on_ok",
        "host": "local",
        "task": "debug",
        "stdout": "ok: [local] => {}" * 4,
        "data": {"play": "bench", "task_action": "debug", "changed": False},
        "created": now(),
    }
    started = time.perf_counter()
    for seq in range(1, STORE_EVENTS + 1):
        store.add_event("bench0000000", {**event, "seq": seq})
    rate = STORE_EVENTS / (time.perf_counter() - started)
    store.close()
    return rate


def main() -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="animaflow-bench-") as tmp:
        work = Path(tmp)
        server, base, headers = start_server(work)
        try:
            result = asyncio.run(figures(base, headers))
        finally:
            server.terminate()
            server.wait(timeout=30)
        rate = store_events_per_second(work)

    idle, loaded, listing = result["idle_first"], result["loaded_first"], result["list"]
    print(
        f"click -> first SSE event, idle server ({LATENCY_RUNS} runs; includes ansible-playbook start-up): "
        f"median {statistics.median(idle):.0f} ms, p95 {percentile(idle, 95):.0f} ms, min {min(idle):.0f} ms"
    )
    print(
        f"click -> first SSE event while {STREAM_READERS} readers follow another run ({len(loaded)} runs): "
        f"median {statistics.median(loaded):.0f} ms, max {max(loaded):.0f} ms (goal < 1000 ms)"
    )
    for concurrency, latencies in listing.items():
        print(
            f"GET /api/runs x {RUN_LIST_GETS}, {concurrency} at a time, while {STREAM_READERS} readers follow a "
            f"streaming run: p50 {percentile(latencies, 50):.1f} ms, p95 {percentile(latencies, 95):.1f} ms "
            f"(goal < 100 ms), max {max(latencies):.1f} ms"
        )
    print(f"errors in all those requests: {result['errors']}")
    streamed = result["streamed"]
    print(
        f"the run was still streaming at the end: {result['run_still_streaming']}; events each reader got: "
        f"min {min(streamed)}, max {max(streamed)}"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} at the end (other work included)"
    )
    print(f"store: {rate:.0f} events/s ({STORE_EVENTS} events, one committed transaction each, WAL)")


if __name__ == "__main__":
    main()
