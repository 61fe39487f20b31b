#!/usr/bin/python
# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Thin AnsibleModule wrapper over module_utils.run_lock; the action plugin of the same name decides
whether a holder is gone (that needs the controller's process table)."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.animaflow.inference.plugins.module_utils.run_lock import (
    acquire,
    read_holder,
    release,
)

DOCUMENTATION = r"""
---
module: run_lock
short_description: Hold a node for one run, so two runs never work on it at once
version_added: "0.2.0"
description:
  - Takes, checks or releases the lock file a run holds on a node (or, delegated to the controller, on
    the controller's artifact cache). A playbook from the command line and one from the dashboard take
    the same lock, so the second waits briefly, then stops naming the holder.
  - The holder is recorded as JSON (run, controller, ansible-playbook pid and its start time, user,
    playbook, start time). The action plugin replaces a holder whose process is gone on this controller,
    or that is older than O(max_age), and says so; O(force) replaces any holder.
  - Changes nothing in check mode except the lock itself, which a check run also takes so that it
    reads a node nobody is changing.
author:
  - AnimaFlow Inference contributors
options:
  path:
    description: Lock file; its directory is created.
    type: path
    default: /run/animaflow/run.lock
  state:
    description: C(present) takes the lock, C(absent) releases it if this run holds it, C(query) reads it.
    type: str
    choices: [present, absent, query]
    default: present
  wait:
    description: Seconds to wait for another run's lock before failing (C(present) only).
    type: int
    default: 10
  max_age:
    description: Seconds after which a holder from another controller is taken to be gone (0 = never).
    type: int
    default: 43200
  force:
    description: Replace whatever holds the lock (the message names it). For a holder you know is dead.
    type: bool
    default: false
  purpose:
    description: Words for the holder record and messages (e.g. C(node), C(controller cache)).
    type: str
    default: node
"""

EXAMPLES = r"""
- name: Hold the node for this run
  animaflow.inference.run_lock:
    wait: 10

- name: Release it at the end of the play
  animaflow.inference.run_lock:
    state: absent
"""

RETURN = r"""
holder:
  description: The holder found before this call (null when the lock was free or already ours).
  returned: always
  type: dict
replaced:
  description: The holder this run took over (gone or too old), if any.
  returned: when state is present
  type: dict
run_id:
  description: This run's identity, as recorded in the lock.
  returned: always
  type: str
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/run/animaflow/run.lock"},
            "state": {"type": "str", "choices": ["present", "absent", "query"], "default": "present"},
            # Filled in by the action plugin: who this run is, and which holder it may replace.
            "owner": {"type": "dict", "default": {}},
            "replace_run_id": {"type": "str", "default": ""},
            "wait": {"type": "int", "default": 10},
            "max_age": {"type": "int", "default": 43200},
            "force": {"type": "bool", "default": False},
            "purpose": {"type": "str", "default": "node"},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    owner = module.params["owner"]
    state = module.params["state"]
    run_id = str(owner.get("run_id", ""))
    if state == "query":
        module.exit_json(changed=False, holder=read_holder(path), run_id=run_id)
    if not run_id:
        module.fail_json(
            msg="run_lock needs owner.run_id: use the animaflow.inference.run_lock action, not the module alone"
        )
    if state == "absent":
        module.exit_json(changed=release(path, run_id), holder=None, run_id=run_id)
    held, changed, other = acquire(path, owner, module.params["replace_run_id"])
    module.exit_json(
        changed=changed,
        held=held,
        holder=None if held else other,
        replaced=other if held else None,
        run_id=run_id,
    )


if __name__ == "__main__":
    main()
