#!/usr/bin/python
# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Thin AnsibleModule wrapper over module_utils.backend_versions."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.animaflow.inference.plugins.module_utils.backend_versions import (
    active_version,
    installed_versions,
    read_state,
)

DOCUMENTATION = r"""
---
module: backend_versions
short_description: Read which versions of a backend a node holds, which one is active, and its state
version_added: "0.3.0"
description:
  - Lists the installed versions of a backend (the directories of O(root) that hold the O(marker) file,
    which an install writes last), the active one (the target of O(root)/current) and the backend's
    state file (the endpoint and model it serves).
  - Reads only; supports check mode.
author:
  - AnimaFlow Inference contributors
options:
  root:
    description: The backend's install root (one directory per version).
    type: path
    required: true
  marker:
    description: File name that marks a version's directory as completely installed.
    type: str
    default: .animaflow-installed
  state_file:
    description: The backend's state file (JSON object); absent means no state yet.
    type: path
    required: true
extends_documentation_fragment:
  - animaflow.inference.attributes
"""

EXAMPLES = r"""
- name: Read the installed versions of llama.cpp
  animaflow.inference.backend_versions:
    root: /opt/animaflow/llamacpp
    state_file: /var/lib/animaflow/llamacpp/state.json
  register: llamacpp_versions
"""

RETURN = r"""
installed_versions:
  description: The completely installed versions, sorted by name.
  returned: always
  type: list
  elements: str
  sample: [b11312, b9976]
active_version:
  description: The version C(current) points at; empty when none does.
  returned: always
  type: str
  sample: b11312
state:
  description: The state file's content; empty when there is no state file.
  returned: always
  type: dict
  sample: {"endpoint": "http://127.0.0.11:8000/v1", "model": "tiny"}
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "marker": {"type": "str", "default": ".animaflow-installed"},
            "state_file": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        state = read_state(params["state_file"])
    except ValueError as exc:
        module.fail_json(msg=f"The backend's state file {exc}: remove it; the next start writes it again.")
    module.exit_json(
        changed=False,
        installed_versions=installed_versions(params["root"], params["marker"]),
        active_version=active_version(params["root"]),
        state=state,
    )


if __name__ == "__main__":
    main()
