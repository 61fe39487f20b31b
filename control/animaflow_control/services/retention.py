"""Keeps the run history bounded: finished runs older than ANIMAFLOW_KEEP_RUNS_DAYS, and then the oldest
while all runs take more than ANIMAFLOW_KEEP_RUNS_GB, lose their record, events and private run dir.
A run that is not finished is never touched. Benchmark results (the playbooks' files) are kept.

Pruned at start and then hourly, in a thread of its own: deleting directories must not hold up requests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import APIRouter, FastAPI

from animaflow_control.schemas.common import RunState
from animaflow_control.services.store import Store, stamp
from animaflow_control.settings import Settings

log = logging.getLogger(__name__)

EVERY_S = 3600.0
RUN_DIR = re.compile(r"^[0-9a-f]{12}$")


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # gone meanwhile
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def prune(settings: Settings, store: Store, moment: datetime | None = None) -> list[str]:
    """Deletes what the limits leave no room for; returns the run ids (and orphan run dirs) removed."""
    unfinished = tuple(state.value for state in RunState if not state.finished)
    moment = moment or datetime.now(UTC)
    cutoff = moment - timedelta(days=settings.keep_runs_days)
    runs = store.finished_runs(unfinished)
    known = store.run_ids()
    sizes = {run["id"]: run["event_bytes"] + dir_bytes(settings.runs_dir / run["id"]) for run in runs}
    # Run dirs of unfinished runs count towards the total; orphans (a run dir whose record is gone,
    # say with a lost database) go by the age of the dir.
    orphans, other_bytes = [], 0
    for path in settings.runs_dir.iterdir() if settings.runs_dir.is_dir() else ():
        if path.name in sizes or not path.is_dir() or path.is_symlink():
            continue
        orphan = path.name not in known and RUN_DIR.match(path.name)
        if orphan and datetime.fromtimestamp(path.stat().st_mtime, UTC) < cutoff:
            orphans.append(path.name)
            continue
        other_bytes += dir_bytes(path)

    doomed = [run["id"] for run in runs if run["ended"] < stamp(cutoff)]
    total = other_bytes + sum(size for run_id, size in sizes.items() if run_id not in doomed)
    budget = int(settings.keep_runs_gb * 1024**3)
    for run in runs:  # oldest first
        if total <= budget:
            break
        if run["id"] not in doomed:
            doomed.append(run["id"])
            total -= sizes[run["id"]]

    removed = store.delete_runs(doomed, unfinished) if doomed else []
    for name in [*removed, *orphans]:
        try:
            shutil.rmtree(settings.runs_dir / name)
        except FileNotFoundError:
            continue
        except OSError as error:
            log.warning("could not remove run dir %s: %s", name, error)
    if removed or orphans:
        log.info(
            "pruned %d run(s) and %d orphan run dir(s) past %d days or %s GB",
            len(removed),
            len(orphans),
            settings.keep_runs_days,
            settings.keep_runs_gb,
        )
    return [*removed, *orphans]


class Retention:
    def __init__(self, settings: Settings, store: Store, every_s: float = EVERY_S) -> None:
        self.settings = settings
        self.store = store
        self.every_s = every_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def prune(self) -> list[str]:
        with self._lock:
            try:
                return prune(self.settings, self.store)
            except Exception:  # a failed prune must not stop the server; the next one tries again
                log.exception("pruning old runs failed")
                return []

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.prune()

    def start(self) -> None:
        self.prune()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="prune-runs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def housekeeping(retention: Retention) -> APIRouter:
    """A router without routes whose lifespan FastAPI runs inside the app's own (after its start-up,
    before its shutdown): prune at start, then every hour."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        retention.start()
        yield
        retention.stop()

    return APIRouter(lifespan=lifespan)
