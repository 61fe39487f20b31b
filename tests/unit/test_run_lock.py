"""The run lock's file protocol (module_utils/run_lock.py) on real files and real processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.animaflow.inference.plugins.module_utils.run_lock import (
    acquire,
    describe,
    holder_is_gone,
    process_start_ticks,
    read_holder,
    release,
)

HERE = {"controller_id": "machine-a", "boot_id": "boot-1"}


def owner(run_id: str, **extra: object) -> dict[str, object]:
    return {"run_id": run_id, "controller": "ctl", "pid": os.getpid(), "started": 0.0, **HERE, **extra}


def test_first_run_takes_the_lock_and_a_second_is_refused(tmp_path: Path) -> None:
    lock = str(tmp_path / "run.lock")
    assert acquire(lock, owner("run-1")) == (True, True, None)
    held, changed, other = acquire(lock, owner("run-2"))
    assert (held, changed) == (False, False)
    assert other is not None and other["run_id"] == "run-1"
    assert read_holder(lock)["run_id"] == "run-1"


def test_the_same_run_takes_it_again_without_a_change(tmp_path: Path) -> None:
    lock = str(tmp_path / "run.lock")
    acquire(lock, owner("run-1"))
    assert acquire(lock, owner("run-1")) == (True, False, None)


def test_release_only_removes_the_own_lock(tmp_path: Path) -> None:
    lock = str(tmp_path / "run.lock")
    acquire(lock, owner("run-1"))
    assert release(lock, "run-2") is False
    assert read_holder(lock)["run_id"] == "run-1"
    assert release(lock, "run-1") is True
    assert read_holder(lock) is None


def test_take_over_only_the_named_holder(tmp_path: Path) -> None:
    lock = str(tmp_path / "run.lock")
    acquire(lock, owner("run-1"))
    assert acquire(lock, owner("run-3"), replace_run_id="run-2")[0] is False
    held, changed, replaced = acquire(lock, owner("run-3"), replace_run_id="run-1")
    assert (held, changed) == (True, True) and replaced is not None and replaced["run_id"] == "run-1"
    assert json.loads(Path(lock).read_text())["run_id"] == "run-3"


def test_unreadable_lock_is_a_holder_never_taken_silently(tmp_path: Path) -> None:
    lock = tmp_path / "run.lock"
    lock.write_text("garbage")
    held, _, other = acquire(str(lock), owner("run-1"))
    assert held is False and other is not None and other["run_id"] == "unknown"
    assert "unreadable" in describe(other)


def _race(lock: str, run_id: str, results: multiprocessing.Queue[tuple[str, bool]]) -> None:
    results.put((run_id, acquire(lock, owner(run_id))[0]))


def test_many_runs_at_once_exactly_one_wins(tmp_path: Path) -> None:
    lock = str(tmp_path / "run.lock")
    results: multiprocessing.Queue[tuple[str, bool]] = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_race, args=(lock, f"run-{i}", results)) for i in range(12)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    outcomes = [results.get(timeout=5) for _ in procs]
    winners = [run for run, held in outcomes if held]
    assert len(winners) == 1
    assert read_holder(lock)["run_id"] == winners[0]


def test_a_holder_whose_process_ended_is_gone_a_living_one_is_not() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        living = dict(HERE, pid=proc.pid, pid_start=process_start_ticks(proc.pid))
        assert holder_is_gone(living, HERE) is False
        # The same pid with another start time is another process: the holder is gone.
        assert holder_is_gone(dict(living, pid_start=living["pid_start"] - 1), HERE) is True
    finally:
        proc.kill()
        proc.wait()
    assert holder_is_gone(living, HERE) is True
    # Another controller's process cannot be seen from here: never called gone.
    assert holder_is_gone(dict(living, controller_id="machine-b"), HERE) is False
    # The same controller after a reboot: every process of the old boot is gone.
    assert holder_is_gone(dict(living, boot_id="boot-0"), HERE) is True


def test_describe_names_the_holder() -> None:
    text = describe(
        {
            "run_id": "r1",
            "playbook": "Upgrade an inference backend",
            "user": "ana",
            "controller": "ctl",
            "pid": 7,
            "started": 100.0,
        },
        now=160.0,
    )
    assert text == "Upgrade an inference backend (run r1) started by ana on controller ctl (pid 7) 60 s ago"
