"""The control plane's own files and history: private modes, a way back in when the database is lost,
pruning of old runs, and tokens that expire."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from control_helpers import record_run, variant
from fastapi.testclient import TestClient

from animaflow_control import cli
from animaflow_control.services.files import secure_data_dir
from animaflow_control.services.retention import prune
from animaflow_control.services.store import Store, now, stamp
from animaflow_control.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


# 6. The data dir is private, whatever the umask, and repaired at start.


def test_data_dir_database_and_token_file_are_private_whatever_the_umask(
    settings: Settings, app_client: Callable, admin_of: Callable, wait_run: Callable
) -> None:
    db = settings.db_file
    side_files = [db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    with umask(0), app_client(settings) as client:
        admin = admin_of(settings)
        run_id = client.post("/api/runs", json={"action": "facts", "hosts": ["local"]}, headers=admin).json()[
            "id"
        ]
        wait_run(client, run_id, admin)
        assert mode(settings.data_path) == 0o700
        assert mode(settings.runs_dir) == 0o700
        assert mode(settings.runs_dir / run_id) == 0o700
        for path in (db, *side_files, settings.admin_token_file):
            assert mode(path) == 0o600, path

    # What an older version left behind: everything readable by every local user.
    for path in (settings.data_path, settings.runs_dir, settings.runs_dir / run_id):
        path.chmod(0o755)
    for path in (db, *side_files, settings.admin_token_file):
        if path.exists():
            path.chmod(0o644)
    with app_client(settings):
        assert mode(settings.data_path) == 0o700
        assert mode(settings.runs_dir) == 0o700
        assert mode(settings.runs_dir / run_id) == 0o700
        for path in (db, *side_files, settings.admin_token_file):
            assert mode(path) == 0o600, path


def test_a_database_elsewhere_keeps_its_directory_mode(settings: Settings, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    elsewhere = variant(settings, db_path=shared / "control.db")
    secure_data_dir(elsewhere)
    assert mode(shared) == 0o755
    assert mode(shared / "control.db") == 0o600


# 7. A lost database: start-up mints a new admin token; `animaflow admin-token --reset` recovers.


def test_a_lost_database_with_the_token_file_left_gets_a_new_admin_token(
    settings: Settings, app_client: Callable, capsys: pytest.CaptureFixture[str]
) -> None:
    with app_client(settings):
        old = settings.admin_token_file.read_text().strip()
    capsys.readouterr()
    for path in settings.db_file.parent.glob(settings.db_file.name + "*"):
        path.unlink()

    with app_client(settings) as client:  # once crashed here: the token file was in the way
        new = settings.admin_token_file.read_text().strip()
        assert new != old
        assert new in capsys.readouterr().out
        assert mode(settings.admin_token_file) == 0o600
        assert client.get("/api/auth/me", headers=bearer(new)).json()["role"] == "admin"
        # The old token is not trusted again: it may have been revoked in the lost database.
        assert client.get("/api/auth/me", headers=bearer(old)).status_code == 401
    with app_client(settings) as client:  # and the next start changes nothing
        assert settings.admin_token_file.read_text().strip() == new
        assert new not in capsys.readouterr().out
        assert client.get("/api/auth/me", headers=bearer(new)).status_code == 200


def test_admin_token_reset_mints_a_new_token_and_revokes_the_old(
    settings: Settings,
    app_client: Callable,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANIMAFLOW_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("ANIMAFLOW_INVENTORY", str(settings.inventory))
    with app_client(settings) as client:  # beside a running server
        old = settings.admin_token_file.read_text().strip()
        client.post("/api/auth/session", json={"token": old})
        assert client.get("/api/auth/me").status_code == 200
        capsys.readouterr()

        assert cli.main(["admin-token"]) == 0
        checked = capsys.readouterr().out
        assert "holds active token" in checked and old not in checked

        assert cli.main(["admin-token", "--reset"]) == 0
        new = settings.admin_token_file.read_text().strip()
        printed = capsys.readouterr().out
        assert new != old and new in printed and "revoked" in printed
        assert mode(settings.admin_token_file) == 0o600
        assert client.get("/api/auth/me", headers=bearer(new)).json()["role"] == "admin"
        assert client.get("/api/auth/me", headers=bearer(old)).status_code == 401
        assert client.get("/api/auth/me").status_code == 401  # the old token's session is closed

    settings.admin_token_file.unlink()
    assert cli.main(["admin-token"]) == 1
    assert "--reset" in capsys.readouterr().out
    assert cli.main(["admin-token", "--reset"]) == 0  # a deleted file is no obstacle either
    assert settings.admin_token_file.exists()


# 8. Old runs are pruned, unfinished ones never; tokens may expire.


def add_run(
    store: Store, runs_dir: Path, run_id: str, state: str, age_days: float, dir_bytes: int = 0
) -> None:
    moment = stamp(datetime.now(UTC) - timedelta(days=age_days))
    record_run(store, run_id, state, created_at=moment)
    store.add_event(
        run_id,
        {
            "seq": 1,
            "event": "verbose",
            "host": None,
            "task": None,
            "stdout": "x",
            "data": {},
            "created": moment,
        },
    )
    (runs_dir / run_id).mkdir(parents=True)
    (runs_dir / run_id / "stdout").write_bytes(b"o" * dir_bytes)


def test_runs_past_the_age_or_size_limit_are_pruned_oldest_first(settings: Settings) -> None:
    kib = 1024 / 1024**3
    limited = variant(settings, keep_runs_days=30, keep_runs_gb=10 * kib)
    secure_data_dir(limited)
    store = Store(limited.db_file)
    runs = limited.runs_dir
    add_run(store, runs, "00000000000a", "successful", age_days=60)  # too old
    add_run(store, runs, "00000000000b", "running", age_days=60)  # too old, but not finished
    add_run(store, runs, "00000000000c", "failed", age_days=5, dir_bytes=4096)
    add_run(store, runs, "00000000000d", "canceled", age_days=4, dir_bytes=4096)
    add_run(store, runs, "00000000000e", "successful", age_days=3, dir_bytes=4096)
    add_run(store, runs, "00000000000f", "queued", age_days=2, dir_bytes=4096)  # counts, stays
    for name, age in (("0000000000aa", 60), ("0000000000bb", 1)):  # dirs without a record
        (runs / name).mkdir()
        old = (datetime.now(UTC) - timedelta(days=age)).timestamp()
        os.utime(runs / name, (old, old))

    removed = prune(limited, store)
    # 16 KiB of run dirs against 10 KiB: the two oldest finished go, the unfinished ones stay.
    assert sorted(removed) == ["00000000000a", "00000000000c", "00000000000d", "0000000000aa"]
    assert sorted(path.name for path in runs.iterdir()) == [
        "00000000000b",
        "00000000000e",
        "00000000000f",
        "0000000000bb",
    ]
    assert store.run_ids() == {"00000000000b", "00000000000e", "00000000000f"}
    assert store.events_after("00000000000a", 0) == []
    assert prune(limited, store) == []
    store.close()


def test_old_runs_are_pruned_at_start(
    settings: Settings, app_client: Callable, admin_of: Callable, tmp_path: Path
) -> None:
    with app_client(settings) as client:
        store = client.app.state.services.store
        add_run(store, settings.runs_dir, "00000000000a", "successful", age_days=200)
        add_run(store, settings.runs_dir, "00000000000b", "successful", age_days=1)
    with app_client(settings) as client:
        admin = admin_of(settings)
        assert client.get("/api/runs/00000000000a", headers=admin).status_code == 404
        assert client.get("/api/runs/00000000000b", headers=admin).status_code == 200
        assert not (settings.runs_dir / "00000000000a").exists()


def test_a_token_can_expire(client: TestClient, admin: dict[str, str]) -> None:
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    created = client.post(
        "/api/tokens", json={"name": "temp", "role": "viewer", "expires_at": tomorrow}, headers=admin
    )
    assert created.status_code == 201, created.text
    assert created.json()["expires_at"].startswith(f"{tomorrow}T00:00:00")
    temp = bearer(created.json()["token"])
    assert client.get("/api/nodes", headers=temp).status_code == 200
    signed_in = client.post("/api/auth/session", json={"token": created.json()["token"]})
    assert signed_in.status_code == 200

    # The day comes.
    with client.app.state.services.store.transaction() as db:
        db.execute("UPDATE tokens SET expires_at = ? WHERE id = ?", (now(), created.json()["id"]))
    assert client.get("/api/nodes", headers=temp).status_code == 401
    assert client.get("/api/auth/me").status_code == 401  # its session ends with it
    assert client.post("/api/auth/session", json={"token": created.json()["token"]}).status_code == 401
    listed = {token["name"]: token for token in client.get("/api/tokens", headers=admin).json()["tokens"]}
    assert listed["temp"]["expired"] is True and listed["temp"]["revoked"] is False
    assert listed["initial admin"]["expires_at"] is None and listed["initial admin"]["expired"] is False


@pytest.mark.parametrize("expires_at", [date.today().isoformat(), "2020-01-01", "soon", "2026-13-01"])
def test_expiry_must_be_a_future_date(client: TestClient, admin: dict[str, str], expires_at: str) -> None:
    body = {"name": "temp", "role": "viewer", "expires_at": expires_at}
    assert client.post("/api/tokens", json=body, headers=admin).status_code == 422


def test_an_older_database_gains_the_expiry_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the tokens table as the first release created it
        db.execute(
            "CREATE TABLE tokens (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, role TEXT NOT NULL,"
            " token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, last_used_at TEXT,"
            " revoked INTEGER NOT NULL DEFAULT 0)"
        )
        db.execute(
            "INSERT INTO tokens (name, role, token_hash, created_at) VALUES ('old', 'admin', 'h', ?)",
            (now(),),
        )
    db.close()
    store = Store(path)
    assert store.token_by_hash("h")["expires_at"] is None
    assert [token["name"] for token in store.list_tokens()] == ["old"]
    store.close()
