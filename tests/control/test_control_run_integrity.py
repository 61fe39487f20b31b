"""A run is over only when Ansible is: after a cancel, a stop (SIGTERM) and a crash (SIGKILL) of the
control plane, no process of the run is left, and its node is refused to a new run until then.

The stand-in upgrade playbook runs a process that ignores SIGTERM and carries the state dir in its argv;
the tests find a run's processes by the test's own tmp dir in /proc/*/cmdline (ansible-playbook and its
workers carry the inventory path, the stubborn process the state dir), not by the mechanism under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from control_helpers import variant

from animaflow_control.settings import Settings

STANDIN_PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
UPGRADE = {"action": "upgrade", "backend": "llamacpp", "hosts": ["local"], "version": "b1"}
STUBBORN = "signal.SIG_IGN"


def processes_mentioning(marker: Path) -> dict[int, str]:
    """Live processes whose command line names the marker path (zombies excluded)."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            command = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(marker) in command and state not in "ZX":
            found[int(name)] = command
    return found


def wait_for_stubborn_process(marker: Path, timeout: float = 120) -> None:
    """Until a stubborn process of the stand-in runs and has said it ignores SIGTERM (its ready file)."""
    deadline = time.monotonic() + timeout
    while not any(
        STUBBORN in command and any(marker.rglob(f"stubborn-{pid}.ready"))
        for pid, command in processes_mentioning(marker).items()
    ):
        assert time.monotonic() < deadline, "the stand-in's stubborn process never started"
        time.sleep(0.2)


def test_cancel_ends_every_process_and_holds_the_node_until_then(
    standin_settings: Settings, app_client: Callable, admin_of: Callable, tmp_path: Path, wait_run: Callable
) -> None:
    settings = variant(standin_settings, stop_grace_s=4.0)
    with app_client(settings) as client:
        admin = admin_of(settings)
        run_id = client.post("/api/runs", json=UPGRADE, headers=admin).json()["id"]
        wait_for_stubborn_process(tmp_path)
        # The node lock the playbooks take names the dashboard's run, so a command-line run waiting on
        # the node is told which.
        lock = json.loads((settings.state_dir / "node-local.lock").read_text())
        assert lock["run_id"] == run_id

        canceled_at = time.monotonic()
        assert client.post(f"/api/runs/{run_id}/cancel", headers=admin).status_code == 202
        run = client.get(f"/api/runs/{run_id}", headers=admin).json()
        assert run["state"] == "stopping" and run["canceled_by"] == "initial admin"
        busy = client.post("/api/runs", json=UPGRADE, headers=admin)
        assert busy.status_code == 409 and "stopping" in busy.json()["detail"]["message"], busy.text
        node = next(
            node
            for node in client.get("/api/nodes", headers=admin).json()["nodes"]
            if node["name"] == "local"
        )
        assert (node["busy_run"], node["busy_state"]) == (run_id, "stopping")

        run = wait_run(client, run_id, admin, timeout=60)
        # The stubborn process ignored SIGTERM, so the run could only end after the grace and SIGKILL.
        assert time.monotonic() - canceled_at >= 4.0
        assert run["state"] == "canceled" and run["canceled_by"] == "initial admin"
        assert processes_mentioning(tmp_path) == {}
        # Now the node is free: the next run takes it (and takes over the killed run's node lock).
        again = client.post("/api/runs", json=UPGRADE, headers=admin)
        assert again.status_code == 202, again.text
        wait_for_stubborn_process(tmp_path)
        client.post(f"/api/runs/{again.json()['id']}/cancel", headers=admin)
        wait_run(client, again.json()["id"], admin, timeout=60)
        assert processes_mentioning(tmp_path) == {}


def stubborn_run(live_server: Callable, tmp_path: Path, grace_s: str) -> tuple[str, dict[str, str], str]:
    """A server with the given stop grace, running the stand-in upgrade: (base URL, admin headers, run id)."""
    base, state = live_server(STANDIN_PLAYBOOKS, stop_grace_s=grace_s)
    admin = {"Authorization": f"Bearer {(state / 'control' / 'admin-token').read_text().strip()}"}
    run_id = httpx.post(f"{base}/api/runs", json=UPGRADE, headers=admin).json()["id"]
    wait_for_stubborn_process(tmp_path)
    return base, admin, run_id


def follow(url: str, headers: dict[str, str]) -> tuple[threading.Thread, list[str]]:
    """Reads a live log in a thread, once connected; the lines it got, as they come."""
    lines: list[str] = []
    connected = threading.Event()

    def read() -> None:
        try:
            with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(5, read=None)) as response:
                connected.set()
                lines.extend(response.iter_lines())
        except httpx.HTTPError as error:
            lines.append(f"error: {error!r}")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert connected.wait(10)
    return reader, lines


def test_stop_with_an_open_live_log_ends_the_stream_and_the_run_at_once(
    live_server: Callable, server_processes: list[subprocess.Popen], tmp_path: Path
) -> None:
    base, admin, run_id = stubborn_run(live_server, tmp_path, "3")
    reader, lines = follow(f"{base}/api/runs/{run_id}/events", admin)

    stopped_at = time.monotonic()
    server_processes[0].send_signal(signal.SIGTERM)
    server_processes[0].wait(timeout=60)
    reader.join(10)
    took = time.monotonic() - stopped_at
    assert not reader.is_alive(), "the live-log stream stayed open after the server stopped"
    assert any("the control plane is stopping" in line for line in lines), lines[-5:]
    # Grace (3 s) plus SIGKILL and the write: not the run's remaining 300 s.
    assert took < 30, f"the server took {took:.0f} s to stop"
    assert processes_mentioning(tmp_path) == {}

    base, _ = live_server(STANDIN_PLAYBOOKS)
    run = httpx.get(f"{base}/api/runs/{run_id}", headers=admin).json()
    assert run["state"] == "interrupted" and run["canceled_by"] == "control plane stop", run


def test_after_a_crash_the_next_start_ends_the_orphans_before_the_node_is_free(
    live_server: Callable, server_processes: list[subprocess.Popen], tmp_path: Path
) -> None:
    base, admin, run_id = stubborn_run(live_server, tmp_path, "20")
    server_processes[0].kill()
    server_processes[0].wait(timeout=30)
    time.sleep(1)
    # What a crash leaves: the run's processes, orphaned, still working on the node.
    assert any(STUBBORN in command for command in processes_mentioning(tmp_path).values())

    base, _ = live_server(STANDIN_PLAYBOOKS, stop_grace_s="20")
    run = httpx.get(f"{base}/api/runs/{run_id}", headers=admin).json()
    assert run["state"] == "stopping" and run["canceled_by"] == "control plane restart", run
    busy = httpx.post(f"{base}/api/runs", json=UPGRADE, headers=admin)
    assert busy.status_code == 409 and run_id in busy.text, busy.text

    deadline = time.monotonic() + 90
    while (run := httpx.get(f"{base}/api/runs/{run_id}", headers=admin).json())["state"] == "stopping":
        assert time.monotonic() < deadline, "the cut-off run is still stopping"
        time.sleep(0.5)
    assert run["state"] == "interrupted" and "restarted" in run["error"]
    assert processes_mentioning(tmp_path) == {}
    again = httpx.post(f"{base}/api/runs", json=UPGRADE, headers=admin)
    assert again.status_code == 202, again.text
    httpx.post(f"{base}/api/runs/{again.json()['id']}/cancel", headers=admin)


def test_a_revoked_tokens_live_log_ends_at_revocation(live_server: Callable, tmp_path: Path) -> None:
    base, admin, run_id = stubborn_run(live_server, tmp_path, "1")
    created = httpx.post(
        f"{base}/api/tokens", json={"name": "watcher", "role": "viewer"}, headers=admin
    ).json()
    reader, lines = follow(
        f"{base}/api/runs/{run_id}/events", {"Authorization": f"Bearer {created['token']}"}
    )
    assert httpx.delete(f"{base}/api/tokens/{created['id']}", headers=admin).status_code == 204
    reader.join(10)
    assert not reader.is_alive(), "the revoked token's stream kept going"
    assert any("no longer valid" in line for line in lines), lines[-5:]
    httpx.post(f"{base}/api/runs/{run_id}/cancel", headers=admin)
