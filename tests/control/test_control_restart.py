"""A restart of the control plane loses nothing; a run it cut off is marked interrupted."""

from __future__ import annotations

from collections.abc import Callable

from control_helpers import record_run

from animaflow_control.services.store import Store, now
from animaflow_control.settings import Settings


def test_finished_runs_and_events_survive_a_restart(
    settings: Settings, app_client: Callable, wait_run: Callable, admin_of: Callable
) -> None:
    with app_client(settings) as client:
        admin = admin_of(settings)
        run_id = client.post("/api/runs", json={"action": "facts", "hosts": ["local"]}, headers=admin).json()[
            "id"
        ]
        before = wait_run(client, run_id, admin)
        events_before = client.get("/metrics", headers=admin).text

    with app_client(settings) as client:
        after = client.get(f"/api/runs/{run_id}", headers=admin).json()
        assert after == before
        assert [run["id"] for run in client.get("/api/runs", headers=admin).json()["runs"]] == [run_id]
        assert "animaflow_events_stored 0" not in events_before
        stored = [
            line
            for line in client.get("/metrics", headers=admin).text.splitlines()
            if "events_stored " in line
        ]
        assert stored and stored[0] in events_before
        with client.stream("GET", f"/api/runs/{run_id}/events", headers=admin) as stream:
            body = "".join(stream.iter_text())
        assert "runner_on_ok" in body and "event: end" in body
        assert (settings.runs_dir / run_id / "artifacts" / "run" / "stdout").stat().st_size > 0


def test_a_run_left_running_by_a_crash_becomes_interrupted(
    settings: Settings, app_client: Callable, admin_of: Callable
) -> None:
    with app_client(settings):
        admin = admin_of(settings)
    # What a crash leaves behind: a run still marked running, with some of its events.
    store = Store(settings.db_file)
    record_run(store, "0123456789ab", "running", action="install", backend="llamacpp")
    store.add_event(
        "0123456789ab",
        {
            "seq": 1,
            "event": "playbook_on_start",
            "host": None,
            "task": None,
            "stdout": "",
            "data": {},
            "created": now(),
        },
    )
    store.close()

    with app_client(settings) as client:
        run = client.get("/api/runs/0123456789ab", headers=admin).json()
        assert run["state"] == "interrupted"
        assert "restarted" in run["error"]
        assert run["finished_at"]
        assert 'animaflow_runs{state="interrupted"} 1' in client.get("/metrics", headers=admin).text
        # The node it held is free again.
        assert client.get("/api/nodes", headers=admin).json()["nodes"][0]["busy_run"] is None


def test_stopping_the_control_plane_interrupts_its_runs(
    standin_settings: Settings, app_client: Callable, wait_run: Callable, admin_of: Callable
) -> None:
    with app_client(standin_settings) as client:
        admin = admin_of(standin_settings)
        body = {"action": "install", "backend": "llamacpp", "hosts": ["local"]}
        run_id = client.post("/api/runs", json=body, headers=admin).json()["id"]
        wait_run(client, run_id, admin, until="running")
    with app_client(standin_settings) as client:
        run = client.get(f"/api/runs/{run_id}", headers=admin).json()
        assert run["state"] == "interrupted"
        assert "stopped" in run["error"]
