#!/usr/bin/python
# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Documentation only: the action plugin of the same name does the work on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: controller_file
short_description: Write a small file on the controller, without running a module
version_added: "0.3.0"
description:
  - Writes O(content) to O(dest) on the controller (the machine that runs ansible-playbook), creating
    its directory, atomically (a temporary file renamed over it). Reports C(changed) when the content
    differs. Nothing is written in check mode.
  - Runs in Ansible's worker process, so it costs no module run; for a file per node per run, such as
    the node status the dashboard reads.
author:
  - AnimaFlow Inference contributors
options:
  dest:
    description: The file to write on the controller.
    type: path
    required: true
  content:
    description: What the file holds.
    type: str
    required: true
  mode:
    description: Its permissions.
    type: str
    default: "0644"
extends_documentation_fragment:
  - animaflow.inference.attributes
"""

EXAMPLES = r"""
- name: Write the node's status JSON on the controller
  animaflow.inference.controller_file:
    dest: "{{ animaflow_controller_dir }}/status/{{ inventory_hostname }}.json"
    content: "{{ animaflow_status | to_nice_json }}\n"
"""

RETURN = r"""
dest:
  description: The absolute path written.
  returned: always
  type: str
"""
