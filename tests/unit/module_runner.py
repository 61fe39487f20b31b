"""Run a module of this collection the way Ansible does: a subprocess reading ANSIBLE_MODULE_ARGS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
