"""Runs playbooks through ansible-runner: one private data dir per run, user input only as extravars data,
every event stored as it arrives and announced to the SSE streams."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
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
from animaflow_control.services.locks import NodeBusy, NodeLocks
from animaflow_control.services.processes import RUN_ID_VARIABLE, RunProcess, end_run_processes, run_processes
from animaflow_control.services.store import Store, now
from animaflow_control.settings import Settings

log = logging.getLogger(__name__)

RUNNER_STATES = {"successful": RunState.successful, "canceled": RunState.canceled}
# Kept from each event's event_data: enough for the log and the progress bars, not the facts a setup
# task returns (hundreds of kilobytes per host, and still in the run's artifacts on disk).
EVENT_FIELDS = (
    "play",
    "task_action",
    "changed",
    "duration",
    "ok",
    "failures",
    "dark",
    "skipped",
    "ignore_errors",
)
SHUTDOWN = "the control plane stopped while this run was in progress"
RESTARTED = "the control plane restarted while this run was in progress"
# canceled_by when no user asked: what cut the run off.
BY_SHUTDOWN = "control plane stop"
BY_RESTART = "control plane restart"


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
    stopper: threading.Thread | None = None


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
            self.bus.close_feed(run_id)
            self.store.update_run(
                run_id, state=RunState.failed.value, error=f"could not start: {error}", finished_at=now()
            )
            raise
        return self.store.get_run(run_id)  # type: ignore[return-value]

    def _playbook_command(self) -> str | None:
        """ansible-playbook under nice, as a wrapper: runner takes one executable, and with it, the
        playbook as cmdline (it adds the playbook itself only for its own ansible-playbook)."""
        if not self.settings.run_nice:
            return None
        wrapper = self.settings.data_path / "ansible-playbook-nice"
        text = f"#!/bin/sh\n# Written by the control plane: runs at niceness {self.settings.run_nice}.\n"
        text += f'exec nice -n {self.settings.run_nice} ansible-playbook "$@"\n'
        if not wrapper.is_file() or wrapper.read_text() != text:
            temporary = wrapper.with_suffix(".tmp")
            temporary.write_text(text)
            temporary.chmod(0o700)
            temporary.replace(wrapper)
        return str(wrapper)

    def _launch(self, run_id: str, playbook: Path, hosts: list[str], extravars: dict[str, Any]) -> None:
        private_dir = self.settings.runs_dir / run_id
        private_dir.mkdir(parents=True, mode=0o700)
        bin_dir = str(Path(sys.executable).parent)
        self.bus.open_feed(run_id)
        thread, runner = ansible_runner.run_async(
            binary=(binary := self._playbook_command()),
            cmdline=shlex.quote(str(playbook)) if binary else None,
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
                # Inherited by every process of the run (see services/processes.py), and names the run in
                # the node lock the playbooks take, so a command-line run waiting on the node sees whose.
                RUN_ID_VARIABLE: run_id,
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
            stored = stored_event(event)
            self.store.add_event(run_id, stored)
            self.bus.add_event(run_id, stored)
        except Exception:  # an exception here would abort the playbook run itself
            log.exception("run %s: could not store event", run_id)
        return True

    def _on_status(self, run_id: str, status: str) -> None:
        # Only from queued: a cancel that came first has already made the run stopping.
        if status == "running" and self.store.advance_run(
            run_id, RunState.queued, RunState.running, started_at=now()
        ):
            self.bus.publish(run_id, state=True)

    def _cancel_reason(self, run_id: str) -> str | None:
        with self._active_lock:
            active = self._active.get(run_id)
            return active.cancel_reason if active else None

    def _end_processes(self, run_id: str) -> None:
        """Returns once no process of the run is left: its nodes stay held (the run shows stopping) until
        then, however long an unkillable process takes."""

        def waiting(alive: list[RunProcess]) -> None:
            pids = ", ".join(str(process.pid) for process in alive[:10])
            self.store.update_run(
                run_id, error=f"waiting for {len(alive)} process(es) of this run to end: {pids}"
            )
            self.bus.publish(run_id, state=True)

        end_run_processes(run_id, self.settings.stop_grace_s, on_wait=waiting)

    def _reap(self, run_id: str, thread: threading.Thread, runner: Runner) -> None:
        thread.join()
        # ansible-playbook is gone; its workers, their modules and ssh clients may not be (they left its
        # process group, and a normal end can leave an ssh master behind). The run ends when they have.
        self._end_processes(run_id)
        reason = self._cancel_reason(run_id)
        state, error = RUNNER_STATES.get(runner.status, RunState.failed), None
        if state is RunState.successful:
            pass  # it finished before the cancel reached it
        elif reason == SHUTDOWN:
            state, error = RunState.interrupted, SHUTDOWN
        elif reason is not None:
            state = RunState.canceled
        elif runner.status in ("timeout", "error"):
            error = f"ansible-runner status: {runner.status}"
        self._finish(run_id, state=state.value, rc=runner.rc, error=error)

    def _finish(self, run_id: str, **fields: Any) -> None:
        try:
            self.store.update_run(run_id, finished_at=now(), **fields)
        finally:
            self.locks.release(run_id)
            with self._active_lock:
                self._active.pop(run_id, None)
            self.bus.publish(run_id, state=True)
            self.bus.close_feed(run_id)

    def cancel(self, run_id: str, canceled_by: str, reason: str = "canceled by request") -> bool:
        """Stops the run: its state is stopping at once, canceled once no process of it is left.
        False when the run is not in progress in this process."""
        with self._active_lock:
            active = self._active.get(run_id)
            if active is None:
                return False
            if active.cancel_reason is not None:
                return True  # already stopping; the first one to cancel is the one recorded
            active.cancel_reason = reason
            # runner's cancel_callback only ends ansible-playbook; this ends the workers it left.
            active.stopper = threading.Thread(
                target=self._end_processes, args=(run_id,), name=f"stop-{run_id}", daemon=True
            )
        self.store.advance_run(
            run_id, (RunState.queued, RunState.running), RunState.stopping, canceled_by=canceled_by
        )
        self.bus.publish(run_id, state=True)
        active.stopper.start()
        return True

    def recover(self) -> int:
        """At start: ends what the last stop of the control plane left of its runs (a crash orphans
        ansible's workers to init, where they keep working on the node) and marks those runs interrupted.
        A run whose processes are all gone is settled at once; one with processes left holds its nodes
        (stopping) until a background thread has ended them."""
        runs = self.store.unfinished_runs()
        for run in runs:
            run_id = run["id"]
            canceled_by = run["canceled_by"] or BY_RESTART
            if not run_processes(run_id):
                self.store.update_run(
                    run_id,
                    state=RunState.interrupted.value,
                    error=RESTARTED,
                    canceled_by=canceled_by,
                    finished_at=now(),
                )
                continue
            log.warning("run %s: ending the processes the last stop left behind", run_id)
            # Two cut-off runs on one node: the first one's hold covers both.
            with contextlib.suppress(NodeBusy):
                self.locks.acquire(run["hosts"], run_id)
            self.store.update_run(run_id, state=RunState.stopping.value, canceled_by=canceled_by)
            reaper = threading.Thread(
                target=self._settle, args=(run_id,), name=f"settle-{run_id}", daemon=True
            )
            with self._active_lock:
                self._active[run_id] = ActiveRun(reaper=reaper, cancel_reason=RESTARTED)
            reaper.start()
        return len(runs)

    def _settle(self, run_id: str) -> None:
        self._end_processes(run_id)
        self._finish(run_id, state=RunState.interrupted.value, error=RESTARTED)

    def begin_shutdown(self) -> None:
        """Starts stopping every run; called on the stop signal, before open streams are closed."""
        with self._active_lock:
            run_ids = list(self._active)
        for run_id in run_ids:
            self.cancel(run_id, BY_SHUTDOWN, SHUTDOWN)

    def shutdown(self) -> None:
        self.begin_shutdown()
        with self._active_lock:
            active = list(self._active.values())
        for run in active:
            # Bounded: SIGKILL comes after the grace; only a process that ignores it could hold us here.
            run.reaper.join(self.settings.stop_grace_s + 30)
