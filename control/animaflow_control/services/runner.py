"""Runs playbooks through ansible-runner: one private data dir per run, user input only as extravars data,
every event stored as it arrives and announced to the SSE streams."""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ansible_runner
from ansible_runner.runner import Runner

from animaflow_control.schemas.common import Action, RunState
from animaflow_control.schemas.runs import RunRequest
from animaflow_control.services.events import EventBus
from animaflow_control.services.inventory import InventoryReader
from animaflow_control.services.locks import NodeLocks
from animaflow_control.services.store import Store, now
from animaflow_control.settings import Settings

log = logging.getLogger(__name__)

RUNNER_STATES = {"successful": RunState.successful, "canceled": RunState.canceled}
# Kept from each event's event_data: enough for the log and the progress bars, not the facts a setup
# task returns (hundreds of kilobytes per host, and still in the run's artifacts on disk).
EVENT_FIELDS = ("play", "task_action", "changed", "duration", "ok", "failures", "dark", "skipped")
SHUTDOWN = "the control plane stopped while this run was in progress"


class UnknownTargets(Exception):
    def __init__(self, unknown: list[str]) -> None:
        self.unknown = unknown
        super().__init__(f"not in the inventory's farm group: {', '.join(unknown)}")


class PlaybookMissing(Exception):
    pass


@dataclass
class ActiveRun:
    reaper: threading.Thread
    cancel_reason: str | None = None


def stored_event(event: dict[str, Any]) -> dict[str, Any]:
    event_data = event.get("event_data", {})
    data = {name: event_data[name] for name in EVENT_FIELDS if name in event_data}
    result = event_data.get("res")
    if event.get("event") in ("runner_on_failed", "runner_on_unreachable") and isinstance(result, dict):
        data["msg"] = str(result.get("msg", ""))[:2000]
    return {
        "seq": int(event["counter"]),
        "event": event.get("event", "verbose"),
        "host": event_data.get("host"),
        "task": event_data.get("task"),
        "stdout": event.get("stdout", ""),
        "data": data,
        "created": event.get("created") or now(),
    }


def extravars_for(request: RunRequest, run_id: str, state_dir: Path) -> dict[str, Any]:
    extravars: dict[str, Any] = {"animaflow_controller_dir": str(state_dir)}
    if request.backend is not None:
        extravars["backend"] = request.backend.value
    if request.action is Action.benchmark:
        # Results land in benchmarks/<run id>/, so the dashboard links a result to the run that made it.
        extravars["benchmark_backends"] = [request.backend.value] if request.backend else []
        extravars["benchmark_run_id"] = run_id
    if request.version is not None:
        extravars["version"] = request.version
    if request.model is not None:
        extravars["animaflow_model"] = request.model
    return extravars


class RunManager:
    def __init__(
        self, settings: Settings, store: Store, inventory: InventoryReader, locks: NodeLocks, bus: EventBus
    ) -> None:
        self.settings = settings
        self.store = store
        self.inventory = inventory
        self.locks = locks
        self.bus = bus
        self._active: dict[str, ActiveRun] = {}
        self._active_lock = threading.Lock()

    def start(self, request: RunRequest, created_by: str) -> dict[str, Any]:
        hosts, unknown = self.inventory.read().resolve(request.hosts)
        if unknown:
            raise UnknownTargets(unknown)
        playbook = self.settings.playbook_dir / f"{request.action.value}.yml"
        if not playbook.is_file():
            raise PlaybookMissing(f"playbook {playbook} does not exist")
        run_id = uuid.uuid4().hex[:12]
        self.locks.acquire(hosts, run_id)
        try:
            self.store.create_run(
                {
                    "id": run_id,
                    "action": request.action.value,
                    "backend": request.backend.value if request.backend else None,
                    "targets": request.hosts,
                    "hosts": hosts,
                    "version": request.version,
                    "model": request.model,
                    "state": RunState.queued.value,
                    "created_by": created_by,
                    "created_at": now(),
                }
            )
        except Exception:
            self.locks.release(run_id)
            raise
        try:
            self._launch(run_id, playbook, hosts, extravars_for(request, run_id, self.settings.state_dir))
        except Exception as error:
            # Recorded, not only raised: the run is in the history and must not stay queued.
            self.locks.release(run_id)
            self.store.update_run(
                run_id, state=RunState.failed.value, error=f"could not start: {error}", finished_at=now()
            )
            raise
        return self.store.get_run(run_id)  # type: ignore[return-value]

    def _launch(self, run_id: str, playbook: Path, hosts: list[str], extravars: dict[str, Any]) -> None:
        private_dir = self.settings.runs_dir / run_id
        private_dir.mkdir(parents=True, mode=0o700)
        bin_dir = str(Path(sys.executable).parent)
        thread, runner = ansible_runner.run_async(
            private_data_dir=str(private_dir),
            ident="run",
            playbook=str(playbook),
            inventory=str(self.settings.inventory),
            limit=",".join(hosts),
            extravars=extravars,
            envvars={
                "ANSIBLE_CONFIG": str(self.settings.ansible_config),
                # The venv's ansible-playbook, even when the server was started without activating it.
                "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "ANSIBLE_NOCOLOR": "1",
            },
            # pexpect_timeout is how often runner polls cancel_callback while a task prints nothing.
            settings={"pexpect_timeout": 0.5, "job_timeout": self.settings.run_timeout_s},
            quiet=True,
            event_handler=lambda event: self._on_event(run_id, event),
            status_handler=lambda status, runner_config: self._on_status(run_id, status["status"]),
            cancel_callback=lambda: self._cancel_reason(run_id) is not None,
        )
        # The reaper finalises the run even if runner's thread dies without a final status.
        reaper = threading.Thread(
            target=self._reap, args=(run_id, thread, runner), name=f"reap-{run_id}", daemon=True
        )
        with self._active_lock:
            self._active[run_id] = ActiveRun(reaper=reaper)
        reaper.start()

    def _on_event(self, run_id: str, event: dict[str, Any]) -> bool:
        try:
            self.store.add_event(run_id, stored_event(event))
            self.bus.publish(run_id)
        except Exception:  # an exception here would abort the playbook run itself
            log.exception("run %s: could not store event", run_id)
        return True

    def _on_status(self, run_id: str, status: str) -> None:
        if status == "running":
            self.store.update_run(run_id, state=RunState.running.value, started_at=now())
            self.bus.publish(run_id)

    def _cancel_reason(self, run_id: str) -> str | None:
        with self._active_lock:
            active = self._active.get(run_id)
            return active.cancel_reason if active else None

    def _reap(self, run_id: str, thread: threading.Thread, runner: Runner) -> None:
        thread.join()
        reason = self._cancel_reason(run_id)
        state = RUNNER_STATES.get(runner.status, RunState.failed)
        error = None
        if reason == SHUTDOWN:
            state, error = RunState.interrupted, SHUTDOWN
        elif runner.status in ("timeout", "error"):
            error = f"ansible-runner status: {runner.status}"
        try:
            self.store.update_run(run_id, state=state.value, rc=runner.rc, error=error, finished_at=now())
        finally:
            self.locks.release(run_id)
            with self._active_lock:
                self._active.pop(run_id, None)
            self.bus.publish(run_id)

    def cancel(self, run_id: str, reason: str = "canceled by request") -> bool:
        """Asks runner to stop the run; False when the run is not in progress in this process."""
        with self._active_lock:
            active = self._active.get(run_id)
            if active is None:
                return False
            active.cancel_reason = active.cancel_reason or reason
            return True

    def shutdown(self, timeout_s: float = 20.0) -> None:
        with self._active_lock:
            active = dict(self._active)
        for run_id in active:
            self.cancel(run_id, SHUTDOWN)
        for run in active.values():
            run.reaper.join(timeout_s)
