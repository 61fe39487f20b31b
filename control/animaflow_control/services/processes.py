"""Finds and ends every process a run started, wherever it went.

ansible-core's workers call setsid(), so they leave the process group (and session) that ansible-runner's
cancel kills, and a crash of the control plane orphans them to init. What none of them leaves is the
environment: every run is started with ANIMAFLOW_RUN_ID=<run id>, inherited by ansible-playbook, its
workers, the modules they run and the ssh clients they open. A scan of /proc for that entry finds them
after a cancel, at shutdown, and on the next start after a crash. Each is signalled through a pidfd
opened after the match was re-checked, so a pid reused in between is never hit.

What this cannot reach: processes of another user (a task with become on a local connection, which
the control plane may not signal anyway) and processes on remote nodes, which end when their ssh
connection, killed here, closes.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

RUN_ID_VARIABLE = "ANIMAFLOW_RUN_ID"
PROC = Path("/proc")


@dataclass(frozen=True)
class RunProcess:
    pid: int
    start_ticks: int
    command: str


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) from /proc/<pid>/stat, None once it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields are counted after the last ")".
    fields = text[text.rfind(")") + 2 :].split()
    return fields[0], int(fields[19])


def _marked(pid: int, entry: bytes) -> bool:
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or another user's process: not ours to signal
        return False
    return entry in environ.split(b"\0")


def _command(pid: int) -> str:
    try:
        return (
            (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        )
    except OSError:
        return ""


def run_processes(run_id: str) -> list[RunProcess]:
    """The live processes started for this run (zombies are already over and are left to their parent)."""
    entry = f"{RUN_ID_VARIABLE}={run_id}".encode()
    found = []
    for name in os.listdir(PROC):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        if not _marked(pid, entry):
            continue
        stat = _stat(pid)
        if stat is None or stat[0] in "ZX":
            continue
        found.append(RunProcess(pid, stat[1], _command(pid)[:300]))
    return found


def _signal(process: RunProcess, signum: int, entry: bytes) -> None:
    try:
        fd = os.pidfd_open(process.pid)
    except OSError:  # already gone
        return
    try:
        # Checked again through the pidfd's process: the pid may have been reused since the scan.
        stat = _stat(process.pid)
        if stat is not None and stat[1] == process.start_ticks and _marked(process.pid, entry):
            signal.pidfd_send_signal(fd, signum)
    except OSError:
        pass
    finally:
        os.close(fd)


def end_run_processes(
    run_id: str,
    grace_s: float,
    on_wait: Callable[[list[RunProcess]], None] | None = None,
    give_up_s: float | None = None,
) -> list[RunProcess]:
    """SIGTERM every process of the run, SIGKILL what is left after grace_s, and scan again until none
    is left (a worker may fork while it is being stopped). Returns [] once all are gone; with give_up_s,
    the ones still there after that long. on_wait hears which are still there, every 30 s."""
    entry = f"{RUN_ID_VARIABLE}={run_id}".encode()
    started = time.monotonic()
    terminated: set[tuple[int, int]] = set()
    reported = started
    while True:
        alive = run_processes(run_id)
        if not alive:
            return []
        elapsed = time.monotonic() - started
        if give_up_s is not None and elapsed > give_up_s:
            return alive
        for process in alive:
            key = (process.pid, process.start_ticks)
            if key not in terminated:
                terminated.add(key)
                _signal(process, signal.SIGTERM, entry)
            elif elapsed >= grace_s:
                _signal(process, signal.SIGKILL, entry)
        if on_wait is not None and time.monotonic() - reported >= 30:
            reported = time.monotonic()
            on_wait(alive)
        time.sleep(0.1)
