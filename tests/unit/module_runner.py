"""Run a module of this collection the way Ansible does: a subprocess reading ANSIBLE_MODULE_ARGS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from playbook_runner import run_on_localhost

REPO = Path(__file__).resolve().parents[2]


def run_module(
    name: str, workdir: Path, args: dict[str, Any], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs animaflow.inference.<name> with args (plus any _ansible_* keys given); env replaces os.environ."""
    args_file = workdir / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    pythonpath = os.pathsep.join([str(REPO / ".collections"), *sys.path])
    return subprocess.run(
        [
            sys.executable,
            "-m",
            f"ansible_collections.animaflow.inference.plugins.modules.{name}",
            str(args_file),
        ],
        env={**(os.environ if env is None else env), "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# The oldest Python among the node OSes roles/node accepts (Ubuntu 22.04 ships 3.10);
# tests/integration/test_lint.py derives the same version from animaflow_supported_os.
OLDEST_NODE_PYTHON = "3.10"


def node_python(version: str = OLDEST_NODE_PYTHON) -> str | None:
    """An interpreter of that version on this machine (a pyenv build, else python3.X on PATH)
    that really runs: a pyenv shim on PATH answers 'command not found' for versions not selected."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [str(path) for path in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))]
    candidates += [found] if (found := shutil.which(f"python{version}")) else []
    for candidate in candidates:
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def run_through_ansible(
    name: str, args: dict[str, Any], python: str | None = None, timeout: int = 300
) -> dict[str, Any]:
    """Runs animaflow.inference.<name> on localhost as a play would: ansible builds the module's
    AnsiballZ payload and runs it with `python` (the node's interpreter), or this Python.
    Returns the task result (with failed: true when the module failed)."""
    done = run_on_localhost(
        f"animaflow.inference.{name}",
        args,
        "-e",
        f"ansible_python_interpreter={python or sys.executable}",
        # Ad-hoc runs use the stdout callback only when told to load callbacks.
        env={"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"},
        timeout=timeout,
    )
    try:
        return json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, LookupError) as error:
        raise AssertionError(
            f"ansible gave no task result ({error}):\n{done.stdout}\n{done.stderr}"
        ) from error
