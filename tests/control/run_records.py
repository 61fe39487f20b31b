"""Run rows as the runner writes them: history for a test without running a playbook (the control
tests import this by name; pytest puts this directory on sys.path)."""

from __future__ import annotations

from typing import Any

from animaflow_control.services.store import Store, now


def record_run(store: Store, run_id: str, state: str, created_at: str | None = None, **fields: Any) -> None:
    moment = created_at or now()
    row = {
        "id": run_id,
        "action": "facts",
        "backend": None,
        "targets": ["local"],
        "hosts": ["local"],
        "version": None,
        "model": None,
        "state": state,
        "created_by": "test",
        "created_at": moment,
        "finished_at": None if state in ("queued", "running", "stopping") else moment,
    }
    store.create_run({**row, **fields})
