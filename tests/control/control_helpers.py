"""Helpers the control plane tests share (imported by name: pytest puts this directory on sys.path)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from animaflow_control.services.store import Store, now
from animaflow_control.settings import Settings


def variant(settings: Settings, **changes: Any) -> Settings:
    """The same settings with some changed (a fresh object: no cached property carries over)."""
    return Settings(**{**settings.model_dump(), **changes})


def sign_in(client: TestClient, headers: dict[str, str]) -> str:
    """Opens a dashboard session with the bearer token in headers; returns its CSRF token."""
    token = headers["Authorization"].removeprefix("Bearer ")
    return client.post("/api/auth/session", json={"token": token}).json()["csrf_token"]


def record_run(store: Store, run_id: str, state: str, created_at: str | None = None, **fields: Any) -> None:
    """A run row as the runner writes it: history for a test without running a playbook."""
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
