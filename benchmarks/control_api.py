"""Control plane figures: POST /api/runs -> first SSE event latency, the API under 50 concurrent readers
while a run streams, and the events per second the SQLite store sustains.

Starts `animaflow serve` on a free 127.0.0.1 port with a throw-away state dir and generated playbooks
(the figures are about the control plane, not about what a playbook does), prints the figures, stops it.
    .venv/bin/python benchmarks/control_api.py
"""

from __future__ import annotations

import asyncio
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
READERS = 50
REQUESTS_PER_READER = 40
STORE_EVENTS = 5000

INVENTORY = """farm:
  hosts:
    local: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
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


def first_event_latency(base: str, headers: dict[str, str]) -> list[float]:
    latencies = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for _ in range(LATENCY_RUNS):
            started = time.perf_counter()
            run_id = client.post("/api/runs", json={"action": "facts", "hosts": ["local"]}).json()["id"]
            first = None
            with client.stream("GET", f"/api/runs/{run_id}/events") as stream:
                for line in stream.iter_lines():
                    if first is None and line == "event: ansible":
                        first = time.perf_counter() - started
                    if line == "event: end":
                        break
            assert first is not None, f"run {run_id} streamed no event"
            latencies.append(first * 1000)
    return latencies


async def readers_under_load(base: str, headers: dict[str, str]) -> dict[str, float]:
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=30, limits=httpx.Limits(max_connections=READERS + 5)
    ) as client:
        run_id = (await client.post("/api/runs", json={"action": "status", "hosts": ["local"]})).json()["id"]
        streamed = 0

        async def follow() -> None:
            nonlocal streamed
            async with client.stream("GET", f"/api/runs/{run_id}/events") as stream:
                async for line in stream.aiter_lines():
                    streamed += line == "event: ansible"
                    if line == "event: end":
                        return

        paths = ["/api/runs", f"/api/runs/{run_id}", "/api/nodes", "/healthz"]
        latencies: list[float] = []
        errors = 0

        async def reader(index: int) -> None:
            nonlocal errors
            for request in range(REQUESTS_PER_READER):
                started = time.perf_counter()
                try:
                    response = await client.get(paths[(index + request) % len(paths)])
                    errors += response.status_code != 200
                except httpx.HTTPError:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        follower = asyncio.create_task(follow())
        await asyncio.sleep(1.5)  # let the run start streaming first
        started = time.perf_counter()
        await asyncio.gather(*(reader(index) for index in range(READERS)))
        elapsed = time.perf_counter() - started
        still_running = (await client.get(f"/api/runs/{run_id}")).json()["state"] == "running"
        await asyncio.wait_for(follower, 120)
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "max": max(latencies),
        "rps": len(latencies) / elapsed,
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
    with tempfile.TemporaryDirectory(prefix="animaflow-bench-") as tmp:
        work = Path(tmp)
        server, base, headers = start_server(work)
        try:
            latency = first_event_latency(base, headers)
            load = asyncio.run(readers_under_load(base, headers))
        finally:
            server.terminate()
            server.wait(timeout=30)
        rate = store_events_per_second(work)

    print(
        f"POST /api/runs -> first SSE event ({LATENCY_RUNS} runs; includes ansible-playbook start-up): "
        f"median {statistics.median(latency):.0f} ms, p95 {percentile(latency, 95):.0f} ms, "
        f"min {min(latency):.0f} ms"
    )
    print(
        f"{READERS} concurrent readers x {REQUESTS_PER_READER} GETs while a run streams: "
        f"{load['requests']} requests, {load['errors']} errors, p50 {load['p50']:.1f} ms, "
        f"p95 {load['p95']:.1f} ms, max {load['max']:.1f} ms, {load['rps']:.0f} req/s; "
        f"run still streaming at the end: {load['run_still_streaming']}, events streamed to a follower: "
        f"{load['streamed']}"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end (other work included)"
    )
    print(f"store: {rate:.0f} events/s ({STORE_EVENTS} events, one committed transaction each, WAL)")


if __name__ == "__main__":
    main()
