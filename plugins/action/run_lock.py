# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Controller side of run_lock: who this run is, and whether the holder found on the node is gone.

Only the controller that started a run can see whether its ansible-playbook process still exists, so
that check runs here, between calls of the module on the node."""

from __future__ import annotations

import getpass
import os
import socket
import time
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.animaflow.inference.plugins.module_utils.run_lock import (
    describe,
    holder_age_s,
    holder_is_gone,
    process_start_ticks,
)

MODULE = "animaflow.inference.run_lock"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def controller_identity() -> dict[str, Any]:
    """This controller and this run. The workers are forked from the ansible-playbook process, so the
    parent is the process whose life is the run's (ANIMAFLOW_RUN_ID names the run when the control plane
    starts it)."""
    pid = os.getppid()
    controller_id = _read("/etc/machine-id") or socket.getfqdn()
    boot_id = _read("/proc/sys/kernel/random/boot_id")
    pid_start = process_start_ticks(pid)
    run_id = os.environ.get("ANIMAFLOW_RUN_ID") or f"{controller_id[:8]}-{pid}-{pid_start}"
    return {
        "run_id": run_id,
        "controller": socket.gethostname(),
        "controller_id": controller_id,
        "boot_id": boot_id,
        "pid": pid,
        "pid_start": pid_start,
        "user": getpass.getuser(),
    }


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        state = args.get("state", "present")
        here = controller_identity()
        owner = dict(
            here,
            purpose=args.get("purpose", "node"),
            playbook=(task_vars or {}).get("ansible_play_name") or "a run",
            started=time.time(),
        )
        args["owner"] = owner
        if state != "present":
            return dict(result, **self._execute_module(MODULE, module_args=args, task_vars=task_vars))

        wait = int(args.get("wait", 10))
        max_age = int(args.get("max_age", 43200))
        force = bool(args.get("force", False))
        deadline = time.monotonic() + wait
        while True:
            found = self._execute_module(MODULE, module_args=dict(args, state="query"), task_vars=task_vars)
            if found.get("failed"):
                return dict(result, **found)
            holder = found.get("holder")
            replace = ""
            too_old = False
            if holder and holder.get("run_id") != owner["run_id"]:
                too_old = max_age > 0 and holder_age_s(holder) > max_age
                if force or too_old or holder_is_gone(holder, here):
                    replace = str(holder.get("run_id"))
            if not holder or holder.get("run_id") == owner["run_id"] or replace:
                taken = self._execute_module(
                    MODULE, module_args=dict(args, replace_run_id=replace), task_vars=task_vars
                )
                if taken.get("failed") or taken.get("held"):
                    if taken.get("replaced"):
                        why = (
                            "forced" if force else "older than max_age" if too_old else "its process is gone"
                        )
                        taken["warnings"] = [
                            *taken.get("warnings", []),
                            f"took over the {owner['purpose']} lock of {describe(taken['replaced'])}: {why}",
                        ]
                    return dict(result, **taken)
                holder = taken.get("holder") or holder
            if time.monotonic() >= deadline:
                raise AnsibleActionFail(
                    f"{task_vars.get('inventory_hostname', 'the node') if task_vars else 'the node'}: the "
                    f"{owner['purpose']} is held by {describe(holder or {})}; waited {wait} s. Nothing was changed. "
                    "Fix: wait for that run to finish and re-run; if it is gone (its controller crashed), "
                    "re-run with -e animaflow_lock_force=true."
                )
            time.sleep(1)
