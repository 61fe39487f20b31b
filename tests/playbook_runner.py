"""Run ansible-playbook, or an ad-hoc `ansible` task on localhost, from the tests as a user runs them
from the checkout: the repository's ansible.cfg (which resolves this checkout as animaflow.inference),
plain output (the tests read it), the repository root as the working directory.

tests/conftest.py puts tests/ on sys.path, so any test imports it: `from playbook_runner import run_playbook`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Plain output whatever the caller's environment says: ANSIBLE_FORCE_COLOR would win over NOCOLOR.
PLAIN = {"ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1"}


def ansible_bin(name: str) -> str:
    """The Ansible command installed beside the running Python (the venv's), else the checkout's venv's."""
    for candidate in (Path(sys.executable).with_name(name), ROOT / ".venv" / "bin" / name):
        if candidate.exists():
            return str(candidate)
    return name


def ansible_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ with the repository's ansible.cfg and plain output, then `env` on top."""
    return {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), **PLAIN, **(env or {})}


def run_playbook(
    playbook: str | Path,
    *args: str,
    inventory: str | Path | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = False,
    wait: bool = True,
) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    """ansible-playbook [-i inventory] playbook *args [-e <extra_vars as JSON>].

    Without an inventory, ansible.cfg's applies. wait=True: runs to the end (or timeout) and returns
    the CompletedProcess with stdout and stderr captured. wait=False: returns the running Popen, its
    stderr merged into stdout (a pipe the caller reads or closes); timeout and check do not apply.
    """
    argv = [ansible_bin("ansible-playbook")]
    if inventory is not None:
        argv += ["-i", str(inventory)]
    argv += [str(playbook), *args]
    if extra_vars is not None:
        argv += ["-e", json.dumps(dict(extra_vars))]
    if not wait:
        return subprocess.Popen(
            argv, cwd=ROOT, env=ansible_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    return subprocess.run(
        argv, cwd=ROOT, env=ansible_env(env), capture_output=True, text=True, timeout=timeout, check=check
    )


def run_on_localhost(
    module: str,
    module_args: str | Mapping[str, Any] | None = None,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """ansible localhost -i localhost, -c local -m module [-a module_args] *args.

    A mapping of module_args goes as JSON; an empty one is left out (it would reach the module as a
    raw parameter).
    """
    argv = [ansible_bin("ansible"), "localhost", "-i", "localhost,", "-c", "local", "-m", module]
    if isinstance(module_args, Mapping):
        module_args = json.dumps(dict(module_args)) if module_args else None
    if module_args is not None:
        argv += ["-a", module_args]
    argv += args
    return subprocess.run(
        argv, cwd=ROOT, env=ansible_env(env), capture_output=True, text=True, timeout=timeout, check=check
    )
