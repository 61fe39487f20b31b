"""SQLite (WAL) store of runs, their events, API tokens and dashboard sessions.

One connection per thread: ansible-runner calls back from its own threads while the API reads from the
server's; WAL lets those readers proceed while a run writes its events.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    backend TEXT,
    targets TEXT NOT NULL,
    hosts TEXT NOT NULL,
    version TEXT,
    model TEXT,
    state TEXT NOT NULL,
    rc INTEGER,
    error TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS runs_state ON runs(state);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    host TEXT,
    task TEXT,
    stdout TEXT NOT NULL,
    data TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    session_hash TEXT PRIMARY KEY,
    token_id INTEGER NOT NULL REFERENCES tokens(id),
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
"""

PROGRESS_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()
        # executescript manages its own transaction.
        self._connection().executescript(SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a crash of the control plane; only power loss may drop the tail.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
            with self._connections_lock:
                # Every run brings new threads (runner's and its reaper); close what finished threads left.
                for thread, stale in self._connections:
                    if not thread.is_alive():
                        stale.close()
                self._connections = [(t, c) for t, c in self._connections if t.is_alive()]
                self._connections.append((threading.current_thread(), db))
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, params).fetchall()

    def close(self) -> None:
        with self._connections_lock:
            for _, db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    # Runs

    def create_run(self, run: dict[str, Any]) -> None:
        row = {**run, "targets": json.dumps(run["targets"]), "hosts": json.dumps(run["hosts"])}
        columns = ", ".join(row)
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
            )

    def update_run(self, run_id: str, **fields: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.transaction() as db:
            db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*fields.values(), run_id))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run(rows[0]) if rows else None

    def list_runs(self, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM runs ORDER BY created_at DESC LIMIT ? OFFSET ?", (limit, offset))
        return [_run(row) for row in rows]

    def interrupt_unfinished(self, reason: str) -> int:
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET state = 'interrupted', error = ?, finished_at = ? "
                "WHERE state IN ('queued', 'running')",
                (reason, now()),
            )
            return cursor.rowcount

    def runs_by_state(self) -> dict[str, int]:
        return {
            row["state"]: row["n"]
            for row in self.query("SELECT state, COUNT(*) AS n FROM runs GROUP BY state")
        }

    def last_successful_task_count(self, action: str, backend: str | None) -> int | None:
        """How many tasks the last successful run of this action had: the progress bar's expected total."""
        rows = self.query(
            "SELECT (SELECT COUNT(*) FROM events e WHERE e.run_id = r.id AND e.event = 'playbook_on_task_start')"
            " AS n FROM runs r WHERE r.action = ? AND r.backend IS ? AND r.state = 'successful'"
            " ORDER BY r.finished_at DESC LIMIT 1",
            (action, backend),
        )
        return rows[0]["n"] if rows else None

    # Events

    def add_event(self, run_id: str, event: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO events (run_id, seq, event, host, task, stdout, data, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    event["seq"],
                    event["event"],
                    event["host"],
                    event["task"],
                    event["stdout"],
                    json.dumps(event["data"]),
                    event["created"],
                ),
            )

    def events_after(self, run_id: str, after: int, limit: int = 500) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT seq, event, host, task, stdout, data, created FROM events"
            " WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, after, limit),
        )
        return [{**dict(row), "data": json.loads(row["data"])} for row in rows]

    def count_events(self) -> int:
        return self.query("SELECT COUNT(*) AS n FROM events")[0]["n"]

    def progress(self, run_id: str) -> tuple[int, dict[str, dict[str, int]]]:
        """Tasks started so far, and per host how many task results of each kind arrived."""
        started = self.query(
            "SELECT COUNT(*) AS n FROM events WHERE run_id = ? AND event = 'playbook_on_task_start'",
            (run_id,),
        )[0]["n"]
        per_host: dict[str, dict[str, int]] = {}
        rows = self.query(
            f"SELECT host, event, COUNT(*) AS n FROM events WHERE run_id = ? AND host IS NOT NULL"
            f" AND event IN ({', '.join('?' * len(PROGRESS_EVENTS))}) GROUP BY host, event",
            (run_id, *PROGRESS_EVENTS),
        )
        for row in rows:
            per_host.setdefault(row["host"], {})[row["event"].removeprefix("runner_on_")] = row["n"]
        return started, per_host

    # Tokens

    def add_token(self, name: str, role: str, token_hash: str) -> dict[str, Any]:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO tokens (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)",
                (name, role, token_hash, now()),
            )
            token_id = cursor.lastrowid
        return self.get_token(token_id)  # type: ignore[arg-type,return-value]

    def get_token(self, token_id: int) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM tokens WHERE id = ?", (token_id,))
        return dict(rows[0]) if rows else None

    def token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM tokens WHERE token_hash = ? AND revoked = 0", (token_hash,))
        return dict(rows[0]) if rows else None

    def touch_token(self, token_id: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now(), token_id))

    def list_tokens(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.query("SELECT * FROM tokens ORDER BY id")]

    def revoke_token(self, token_id: int) -> bool:
        with self.transaction() as db:
            cursor = db.execute("UPDATE tokens SET revoked = 1 WHERE id = ? AND revoked = 0", (token_id,))
            db.execute("DELETE FROM sessions WHERE token_id = ?", (token_id,))
            return cursor.rowcount == 1

    def count_tokens(self) -> int:
        return self.query("SELECT COUNT(*) AS n FROM tokens")[0]["n"]

    # Sessions

    def add_session(self, session_hash: str, token_id: int, csrf: str, expires_at: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM sessions WHERE expires_at < ?", (now(),))
            db.execute(
                "INSERT INTO sessions (session_hash, token_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (session_hash, token_id, csrf, now(), expires_at),
            )

    def session(self, session_hash: str) -> dict[str, Any] | None:
        rows = self.query(
            "SELECT s.csrf, s.token_id, t.name, t.role FROM sessions s JOIN tokens t ON t.id = s.token_id"
            " WHERE s.session_hash = ? AND s.expires_at > ? AND t.revoked = 0",
            (session_hash, now()),
        )
        return dict(rows[0]) if rows else None

    def delete_session(self, session_hash: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM sessions WHERE session_hash = ?", (session_hash,))


def _run(row: sqlite3.Row) -> dict[str, Any]:
    return {**dict(row), "targets": json.loads(row["targets"]), "hosts": json.loads(row["hosts"])}
