"""Two runs on one node: the shipped playbooks take the node lock, so a second run (command line or
dashboard alike) waits briefly, then stops naming the holder; a killed run's lock is taken over."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from playbook_runner import run_playbook

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def farm(tmp_path: Path) -> dict[str, Path]:
    inventory = {
        "farm": {
            "hosts": {
                "lock-node": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
                    "animaflow_lock_path": str(tmp_path / "node" / "run.lock"),
                    "animaflow_lock_wait": 2,
                }
            }
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return {"inventory": path, "lock": tmp_path / "node" / "run.lock"}


def run(
    farm: dict[str, Path], playbook: Path, *extra: str, wait: bool = True
) -> subprocess.Popen[str] | subprocess.CompletedProcess[str]:
    return run_playbook(playbook, *extra, inventory=farm["inventory"], timeout=300, wait=wait)


def wait_for_holder(lock: Path) -> dict[str, object]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if lock.exists():
            return json.loads(lock.read_text())
        time.sleep(0.2)
    raise AssertionError(f"{lock} never appeared")


def test_second_run_is_refused_naming_the_holder_then_takes_over_a_killed_one(farm: dict[str, Path]) -> None:
    hold = ROOT / "tests/integration/playbooks/hold_node.yml"
    holder_run = run(farm, hold, "-e", "hold=120", wait=False)
    assert isinstance(holder_run, subprocess.Popen)
    try:
        holder = wait_for_holder(farm["lock"])
        assert holder["pid"] == holder_run.pid  # the ansible-playbook process is what the lock follows

        # The shipped start playbook, from the command line, while the other run works on the node.
        refused = run(farm, ROOT / "playbooks/start.yml", "-e", "backend=llamacpp")
        assert isinstance(refused, subprocess.CompletedProcess)
        out = refused.stdout + refused.stderr
        assert refused.returncode != 0
        assert "lock-node: the node is held by Hold the node for a while" in out
        assert f"(pid {holder_run.pid})" in out and "Nothing was changed" in out
        assert "animaflow_lock_force=true" in out
        assert json.loads(farm["lock"].read_text())["run_id"] == holder["run_id"]

        # A run killed without releasing: its lock stays, the next run sees its process is gone.
        holder_run.send_signal(signal.SIGKILL)
        holder_run.wait(30)
        assert farm["lock"].exists()
    finally:
        if holder_run.poll() is None:
            holder_run.kill()
        assert holder_run.stdout is not None
        holder_run.stdout.close()

    after = run(farm, hold, "-e", "hold=0")
    assert isinstance(after, subprocess.CompletedProcess)
    assert after.returncode == 0, after.stdout[-3000:]
    assert (
        f"took over the node lock of Hold the node for a while (run {holder['run_id']})"
        in after.stdout + after.stderr
    )
    assert "its process is gone" in after.stdout + after.stderr
    # A run that ends normally leaves the node free.
    assert not farm["lock"].exists()


def test_every_lifecycle_playbook_holds_the_node(farm: dict[str, Path]) -> None:
    for name in ["install", "start", "stop", "switch", "upgrade", "uninstall", "benchmark"]:
        plays = yaml.safe_load((ROOT / f"playbooks/{name}.yml").read_text())
        farm_play = next(play for play in plays if play.get("hosts") == "farm")
        pre = [task.get("ansible.builtin.import_tasks") for task in farm_play.get("pre_tasks", [])]
        post = [task.get("ansible.builtin.import_tasks") for task in farm_play.get("post_tasks", [])]
        assert "tasks/node_lock.yml" in pre, name
        assert "tasks/node_unlock.yml" in post, name
