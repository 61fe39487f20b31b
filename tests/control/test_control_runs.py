"""Runs through ansible-runner with real playbooks: events, SSE, node state, locks, cancel."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from animaflow_control.settings import Settings

STANDIN_PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"


def read_sse(client: TestClient, url: str, headers: dict[str, str]) -> list[tuple[str, dict, str | None]]:
    """Reads a whole SSE stream (it ends with the run): (event, data, id) per message."""
    messages, event, event_id = [], None, None
    with client.stream("GET", url, headers=headers) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("id: "):
                event_id = line.removeprefix("id: ")
            elif line.startswith("data: "):
                messages.append((event, json.loads(line.removeprefix("data: ")), event_id))
                event, event_id = None, None
    return messages


def wait_until_waiting(client: TestClient, run_id: str, headers: dict[str, str]) -> None:
    """Until the stand-in playbook reached its wait task: its first task's result is in."""
    deadline = time.monotonic() + 60
    while client.get(f"/api/runs/{run_id}", headers=headers).json()["progress"]["tasks_started"] < 2:
        assert time.monotonic() < deadline, "the stand-in playbook never reached its wait task"
        time.sleep(0.1)


def test_facts_run_streams_its_events_and_updates_the_node(
    settings: Settings, client: TestClient, admin: dict[str, str], wait_run: Callable
) -> None:
    assert client.get("/api/nodes", headers=admin).json()["nodes"][0]["facts"] is None
    created = client.post("/api/runs", json={"action": "facts", "hosts": ["local"]}, headers=admin)
    assert created.status_code == 202
    run_id = created.json()["id"]

    messages = read_sse(client, f"/api/runs/{run_id}/events", admin)
    kinds = [kind for kind, _, _ in messages]
    assert kinds[-1] == "end"
    assert messages[-1][1]["state"] == "successful"
    ansible = [data for kind, data, _ in messages if kind == "ansible"]
    seqs = [event["seq"] for event in ansible]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    names = {event["event"] for event in ansible}
    assert {"playbook_on_start", "playbook_on_task_start", "runner_on_ok", "playbook_on_stats"} <= names
    assert any("can run:" in event["stdout"] for event in ansible)

    run = wait_run(client, run_id, admin)
    assert run["state"] == "successful" and run["rc"] == 0
    assert run["progress"]["hosts"]["local"]["ok"] >= 5
    assert run["progress"]["hosts"]["local"]["failed"] == 0

    node = client.get("/api/nodes", headers=admin).json()["nodes"][0]
    assert node["name"] == "local" and node["busy_run"] is None
    assert node["facts"]["gpu"]["accelerator"] in ("cpu", "cuda", "rocm", "vulkan")
    assert "llamacpp" in node["runnable_backends"]
    # Each run has its own private data dir; user input went there as extravars data.
    extravars = json.loads((settings.runs_dir / run_id / "env" / "extravars").read_text())
    assert extravars["animaflow_controller_dir"] == str(settings.state_dir)


def test_sse_resumes_after_the_last_event_id(
    client: TestClient, admin: dict[str, str], wait_run: Callable
) -> None:
    run_id = client.post("/api/runs", json={"action": "facts", "hosts": ["farm"]}, headers=admin).json()["id"]
    wait_run(client, run_id, admin)
    everything = [
        data["seq"]
        for kind, data, _ in read_sse(client, f"/api/runs/{run_id}/events", admin)
        if kind == "ansible"
    ]
    middle = everything[len(everything) // 2]
    resumed = read_sse(client, f"/api/runs/{run_id}/events", {**admin, "Last-Event-ID": str(middle)})
    assert [data["seq"] for kind, data, _ in resumed if kind == "ansible"] == [
        s for s in everything if s > middle
    ]


def test_status_run_with_the_real_playbook_writes_the_node_status(
    client: TestClient, admin: dict[str, str], wait_run: Callable
) -> None:
    run_id = client.post("/api/runs", json={"action": "status", "hosts": ["local"]}, headers=admin).json()[
        "id"
    ]
    run = wait_run(client, run_id, admin)
    assert run["state"] == "successful", run
    status = client.get("/api/nodes", headers=admin).json()["nodes"][0]["status"]
    assert status is not None and status["collected_at"]


def test_a_busy_node_gets_409_naming_the_run_that_holds_it(
    standin_client: TestClient, standin_admin: dict[str, str], wait_run: Callable
) -> None:
    client, admin = standin_client, standin_admin
    holder = client.post(
        "/api/runs", json={"action": "install", "backend": "llamacpp", "hosts": ["local"]}, headers=admin
    )
    assert holder.status_code == 202
    holder_id = holder.json()["id"]
    wait_until_waiting(client, holder_id, admin)

    # By group too: `render` holds local, which is busy.
    for hosts in (["local"], ["render"], ["local2", "local"]):
        clash = client.post(
            "/api/runs", json={"action": "start", "backend": "llamacpp", "hosts": hosts}, headers=admin
        )
        assert clash.status_code == 409, clash.text
        assert clash.json()["detail"]["run"] == holder_id
        assert holder_id in clash.json()["detail"]["message"]
    node = next(n for n in client.get("/api/nodes", headers=admin).json()["nodes"] if n["name"] == "local")
    assert node["busy_run"] == holder_id

    # Another node is free meanwhile, and the all-or-nothing acquire above left it free.
    other = client.post(
        "/api/runs", json={"action": "start", "backend": "ollama", "hosts": ["local2"]}, headers=admin
    )
    assert other.status_code == 202
    for run_id in (holder_id, other.json()["id"]):
        assert client.post(f"/api/runs/{run_id}/cancel", headers=admin).status_code == 202
        wait_run(client, run_id, admin)


def test_cancel_stops_the_run_and_frees_the_node(
    standin_client: TestClient, standin_admin: dict[str, str], wait_run: Callable
) -> None:
    client, admin = standin_client, standin_admin
    body = {"action": "install", "backend": "llamacpp", "hosts": ["local"], "version": "b4567"}
    run_id = client.post("/api/runs", json=body, headers=admin).json()["id"]
    wait_until_waiting(client, run_id, admin)
    assert client.post(f"/api/runs/{run_id}/cancel", headers=admin).status_code == 202
    run = wait_run(client, run_id, admin, timeout=30)
    assert run["state"] == "canceled"
    assert client.post(f"/api/runs/{run_id}/cancel", headers=admin).status_code == 409
    stdout = "".join(
        event["stdout"]
        for kind, event, _ in read_sse(client, f"/api/runs/{run_id}/events", admin)
        if kind == "ansible"
    )
    assert "backend=llamacpp version=b4567" in stdout  # the extravars arrived as plain data
    again = client.post(
        "/api/runs", json={"action": "start", "backend": "llamacpp", "hosts": ["local"]}, headers=admin
    )
    assert again.status_code == 202
    client.post(f"/api/runs/{again.json()['id']}/cancel", headers=admin)
    wait_run(client, again.json()["id"], admin)


def test_unknown_runs_are_404(client: TestClient, admin: dict[str, str]) -> None:
    assert client.get("/api/runs/0123456789ab", headers=admin).status_code == 404
    assert client.get("/api/runs/0123456789ab/events", headers=admin).status_code == 404
    assert client.post("/api/runs/0123456789ab/cancel", headers=admin).status_code == 404
    assert client.get("/api/runs/not-a-run-id", headers=admin).status_code == 422


def test_a_playbook_that_does_not_exist_yet_is_503(
    standin_client: TestClient, standin_admin: dict[str, str]
) -> None:
    body = {"action": "uninstall", "backend": "llamacpp", "hosts": ["local"]}
    response = standin_client.post("/api/runs", json=body, headers=standin_admin)
    assert response.status_code == 503
    assert "uninstall.yml" in response.json()["detail"]


def test_events_stream_live_while_the_run_is_still_going(live_server: Callable) -> None:
    base, state = live_server(STANDIN_PLAYBOOKS)
    headers = {"Authorization": f"Bearer {(state / 'control' / 'admin-token').read_text().strip()}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        body = {"action": "install", "backend": "llamacpp", "hosts": ["local"]}
        run_id = client.post("/api/runs", json=body).json()["id"]
        with client.stream("GET", f"/api/runs/{run_id}/events") as stream:
            lines = stream.iter_lines()
            while next(lines) != "event: ansible":
                pass
            # The first event arrived while the playbook still has a minute of waiting ahead of it.
            assert client.get(f"/api/runs/{run_id}").json()["state"] == "running"
            assert client.post(f"/api/runs/{run_id}/cancel").status_code == 202
            rest = list(lines)
        assert "event: end" in rest
        assert client.get(f"/api/runs/{run_id}").json()["state"] == "canceled"


def test_a_run_that_cannot_start_is_recorded_failed_and_frees_its_nodes(
    client: TestClient, admin: dict[str, str], monkeypatch
) -> None:
    def refuse(**kwargs: object) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr("animaflow_control.services.runner.ansible_runner.run_async", refuse)
    with pytest.raises(OSError):
        client.post("/api/runs", json={"action": "facts", "hosts": ["local"]}, headers=admin)
    (run,) = client.get("/api/runs", headers=admin).json()["runs"]
    assert run["state"] == "failed"
    assert "no space left" in run["error"]
    assert client.get("/api/nodes", headers=admin).json()["nodes"][0]["busy_run"] is None
