# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Write a small file on the controller from the worker process itself.

The status report wrote each node's JSON with ansible.builtin.file and ansible.builtin.copy delegated to
localhost: three module runs, each a new Python compiling Ansible's module code, about 2 s of the
controller's CPU per node and run. This writes the same file, atomically, without running a module."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("dest", "content", "mode"))

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        dest, content = args.get("dest"), args.get("content")
        if not dest or content is None:
            raise AnsibleActionFail("controller_file needs dest and content")
        mode = int(str(args.get("mode", "0644")), 8)
        dest = os.path.abspath(os.path.expanduser(str(dest)))
        data = str(content).encode("utf-8")
        try:
            with open(dest, "rb") as handle:
                same = handle.read() == data
        except OSError:
            same = False
        result.update(changed=not same, dest=dest)
        if same or self._task.check_mode:
            return result
        try:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            fd, tmp_path = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".controller_file.")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp_path, mode)
            os.replace(tmp_path, dest)
        except OSError as exc:
            raise AnsibleActionFail(f"cannot write {dest} on the controller: {exc}") from exc
        return result
