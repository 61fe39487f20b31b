# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""A lock one run holds on a node (or on the controller cache) for as long as it works there.

The lock is a JSON file naming its holder: the run, the controller machine, the ansible-playbook process
(pid plus its start time, so a reused pid is not mistaken for the holder) and when it was taken. Taking,
replacing and removing it happen under an flock of a guard file beside it, so two runs never both win.
A holder whose process is gone (checked on the controller that started it) or that is older than the
maximum age may be replaced; the holder is then reported, never silently dropped.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LOCK_VERSION = 1


@contextmanager
def _guard(path: str) -> Iterator[None]:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd = os.open(path + ".guard", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_holder(path: str) -> dict[str, Any] | None:
    """The holder recorded in the lock file, None when it is free. A torn or foreign file reads as a
    holder with unknown run, so it is never taken over without a reason."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        return {"run_id": "unknown", "raw": text[:200]}
    return holder if isinstance(holder, dict) else {"run_id": "unknown", "raw": text[:200]}


def _write(path: str, owner: dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(dict(owner, lock_version=LOCK_VERSION), handle, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def acquire(
    path: str, owner: dict[str, Any], replace_run_id: str = ""
) -> tuple[bool, bool, dict[str, Any] | None]:
    """Try once. Returns (held, changed, other): held when this run holds the lock afterwards, changed
    when the file was written, other the holder found (None if the lock was free). The lock of
    replace_run_id, if that is who holds it, is taken over."""
    with _guard(path):
        holder = read_holder(path)
        if holder is None:
            _write(path, owner)
            return True, True, None
        if holder.get("run_id") == owner["run_id"]:
            return True, False, None
        if replace_run_id and holder.get("run_id") == replace_run_id:
            _write(path, owner)
            return True, True, holder
        return False, False, holder


def release(path: str, run_id: str) -> bool:
    """Remove the lock if run_id holds it; True when it was removed."""
    with _guard(path):
        holder = read_holder(path)
        if holder is None or holder.get("run_id") != run_id:
            return False
        os.unlink(path)
        return True


def process_start_ticks(pid: int, proc_root: str = "/proc") -> int | None:
    """Start time of pid in clock ticks since boot (field 22 of /proc/PID/stat), None if no such process."""
    try:
        with open(f"{proc_root}/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            stat = handle.read()
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ESRCH):
            return None
        raise
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def holder_is_gone(holder: dict[str, Any], here: dict[str, Any], proc_root: str = "/proc") -> bool:
    """True when the holder ran on this controller (here: controller_id, boot_id) and its process no
    longer exists (or the machine rebooted since). Unknown for other controllers: False."""
    if holder.get("controller_id") != here.get("controller_id") or not holder.get("controller_id"):
        return False
    if holder.get("boot_id") != here.get("boot_id"):
        return True
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    return process_start_ticks(pid, proc_root) != holder.get("pid_start")


def holder_age_s(holder: dict[str, Any], now: float | None = None) -> float:
    started = holder.get("started")
    if not isinstance(started, (int, float)):
        return 0.0
    return (time.time() if now is None else now) - started


def describe(holder: dict[str, Any], now: float | None = None) -> str:
    """One line naming a holder for error messages."""
    if holder.get("run_id") == "unknown":
        return f"an unreadable lock ({holder.get('raw', '')!r})"
    age = int(holder_age_s(holder, now))
    what = holder.get("playbook") or "a run"
    return (
        f"{what} (run {holder.get('run_id')}) started by {holder.get('user', '?')} on controller "
        f"{holder.get('controller', '?')} (pid {holder.get('pid', '?')}) {age} s ago"
    )
