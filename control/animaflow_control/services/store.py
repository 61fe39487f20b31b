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
from enum import StrEnum
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
    canceled_by TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS runs_state ON runs(state);
-- The history's order: without it every page of GET /api/runs sorts the whole table.
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at);
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
    revoked INTEGER NOT NULL DEFAULT 0,
    expires_at TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    session_hash TEXT PRIMARY KEY,
    token_id INTEGER NOT NULL REFERENCES tokens(id),
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
"""

# Columns added after the first release: (table, column, declaration), added to older databases at start.
MIGRATIONS = (("runs", "canceled_by", "TEXT"), ("tokens", "expires_at", "TEXT"))

PROGRESS_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def stamp(moment: datetime) -> str:
    """The same text form as now(): stored times compare as strings."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


# A token is usable while it is neither revoked nor past its expiry.
TOKEN_USABLE = "revoked = 0 AND (expires_at IS NULL OR expires_at > ?)"


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()
        # executescript manages its own transaction.
        self._connection().executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        for table, column, declaration in MIGRATIONS:
            present = {row["name"] for row in self.query(f"PRAGMA table_info({table})")}
            if column not in present:
                self._connection().execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

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

    def advance_run(
        self, run_id: str, from_states: StrEnum | tuple[StrEnum, ...], to_state: StrEnum, **fields: Any
    ) -> bool:
        """Moves the run to to_state only from one of from_states (a compare-and-set: a cancel and the
        runner's own status arrive from different threads); False when it was in none of them."""
        sources = (from_states,) if isinstance(from_states, StrEnum) else from_states
        assignments = ", ".join(["state = ?", *(f"{name} = ?" for name in fields)])
        with self.transaction() as db:
            cursor = db.execute(
                f"UPDATE runs SET {assignments} WHERE id = ? AND state IN ({', '.join('?' * len(sources))})",
                (to_state.value, *fields.values(), run_id, *(state.value for state in sources)),
            )
            return cursor.rowcount == 1

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run(rows[0]) if rows else None

    def list_runs(self, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM runs ORDER BY created_at DESC LIMIT ? OFFSET ?", (limit, offset))
        return [_run(row) for row in rows]

    def unfinished_runs(self) -> list[dict[str, Any]]:
        """Runs not over yet: at start, what the last stop of the control plane cut off."""
        rows = self.query(
            "SELECT * FROM runs WHERE state IN ('queued', 'running', 'stopping') ORDER BY created_at"
        )
        return [_run(row) for row in rows]

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

    def last_failure(self, run_id: str) -> dict[str, Any] | None:
        """The last task failure that was not ignored (a node unreachable counts): what stopped the run.
        The last, not the first: after a rolled-back upgrade it is the play's own verdict, which names
        both versions, rather than the health check the rollback answered."""
        rows = self.query(
            "SELECT host, task, data FROM events WHERE run_id = ?"
            " AND event IN ('runner_on_failed', 'runner_on_unreachable') ORDER BY seq DESC",
            (run_id,),
        )
        for row in rows:
            data = json.loads(row["data"])
            if not data.get("ignore_errors"):
                return {"host": row["host"], "task": row["task"], "message": data.get("msg", "")}
        return None

    # Tokens

    def add_token(
        self, name: str, role: str, token_hash: str, expires_at: datetime | None = None
    ) -> dict[str, Any]:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO tokens (name, role, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (name, role, token_hash, now(), stamp(expires_at) if expires_at else None),
            )
            token_id = cursor.lastrowid
        return self.get_token(token_id)  # type: ignore[arg-type,return-value]

    def get_token(self, token_id: int) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM tokens WHERE id = ?", (token_id,))
        return dict(rows[0]) if rows else None

    def token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        rows = self.query(
            f"SELECT * FROM tokens WHERE token_hash = ? AND {TOKEN_USABLE}", (token_hash, now())
        )
        return dict(rows[0]) if rows else None

    def token_id(self, token_hash: str) -> int | None:
        """The token with this hash, revoked or expired as well."""
        rows = self.query("SELECT id FROM tokens WHERE token_hash = ?", (token_hash,))
        return rows[0]["id"] if rows else None

    def touch_token(self, token_id: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now(), token_id))

    def list_tokens(self) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT *, (expires_at IS NOT NULL AND expires_at <= ?) AS expired FROM tokens ORDER BY id",
            (now(),),
        )
        return [dict(row) for row in rows]

    def token_active(self, token_id: int) -> bool:
        """Still valid: an open live-log stream checks this, so a revoked token stops receiving."""
        return bool(self.query(f"SELECT 1 FROM tokens WHERE id = ? AND {TOKEN_USABLE}", (token_id, now())))

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
            " WHERE s.session_hash = ? AND s.expires_at > ? AND t.revoked = 0"
            " AND (t.expires_at IS NULL OR t.expires_at > ?)",
            (session_hash, now(), now()),
        )
        return dict(rows[0]) if rows else None

    def delete_session(self, session_hash: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM sessions WHERE session_hash = ?", (session_hash,))

    # Retention

    def finished_runs(self, unfinished: tuple[str, ...]) -> list[dict[str, Any]]:
        """Finished runs, oldest first: id, when it ended, and the bytes its stored events take."""
        rows = self.query(
            "SELECT r.id, COALESCE(r.finished_at, r.created_at) AS ended, (SELECT COALESCE(SUM("
            "LENGTH(e.stdout) + LENGTH(e.data)), 0) FROM events e WHERE e.run_id = r.id) AS event_bytes"
            f" FROM runs r WHERE r.state NOT IN ({', '.join('?' * len(unfinished))}) ORDER BY ended, r.id",
            unfinished,
        )
        return [dict(row) for row in rows]

    def run_ids(self) -> set[str]:
        return {row["id"] for row in self.query("SELECT id FROM runs")}

    def delete_runs(self, run_ids: list[str], unfinished: tuple[str, ...]) -> list[str]:
        """Deletes these runs with their events, except any not finished; returns the ids deleted."""
        deleted: list[str] = []
        with self.transaction() as db:
            for run_id in run_ids:
                cursor = db.execute(
                    f"SELECT 1 FROM runs WHERE id = ? AND state NOT IN ({', '.join('?' * len(unfinished))})",
                    (run_id, *unfinished),
                )
                if cursor.fetchone() is None:
                    continue
                db.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
                db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                deleted.append(run_id)
        return deleted


def _run(row: sqlite3.Row) -> dict[str, Any]:
    return {**dict(row), "targets": json.loads(row["targets"]), "hosts": json.loads(row["hosts"])}
