#!/usr/bin/python
# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Thin AnsibleModule wrapper: runs systemctl for the units that match, parses with module_utils."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.animaflow.inference.plugins.module_utils.systemd_units import (
    merge,
    parse_list_unit_files,
    parse_list_units,
    parse_show,
)

DOCUMENTATION = r"""
---
module: unit_facts
short_description: The state of the node's AnimaFlow services, as service_facts reports them
version_added: "0.3.0"
description:
  - Sets C(animaflow_services) to the systemd services that match O(patterns), each with the keys
    M(ansible.builtin.service_facts) gives (C(name), C(state) C(running) or C(stopped) or the
    ActiveState of a unit systemd has not loaded, C(status) the unit file's state or C(failed),
    C(masked), C(not-found), and C(source)).
  - M(ansible.builtin.service_facts) lists every service and runs C(systemctl show) once for each unit
    file that is not loaded; this asks only for the matching ones, in at most three systemctl calls, and
    leaves C(ansible_facts.services) alone.
  - Reads only; supports check mode.
author:
  - AnimaFlow Inference contributors
options:
  patterns:
    description: systemctl unit patterns (shell globs) of the services to report.
    type: list
    elements: str
    default: [animaflow-*]
extends_documentation_fragment:
  - animaflow.inference.attributes
"""

EXAMPLES = r"""
- name: Ask systemd for the backends' services
  animaflow.inference.unit_facts:

- name: Stop llama.cpp when it runs
  ansible.builtin.systemd_service:
    name: animaflow-llamacpp.service
    state: stopped
  when: ansible_facts.animaflow_services['animaflow-llamacpp.service'].state | default('') == 'running'
"""

RETURN = r"""
ansible_facts:
  description: Facts for the play.
  returned: always
  type: complex
  contains:
    animaflow_services:
      description: Unit name -> C(name), C(state), C(status), C(source) (C(systemd)).
      returned: always
      type: dict
      sample: {"animaflow-llamacpp.service": {"name": "animaflow-llamacpp.service", "state": "running",
               "status": "enabled", "source": "systemd"}}
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={"patterns": {"type": "list", "elements": "str", "default": ["animaflow-*"]}},
        supports_check_mode=True,
    )
    patterns = [
        p if p.endswith(".service") or "*" in p else p + ".service" for p in module.params["patterns"]
    ]
    systemctl = module.get_bin_path("systemctl", required=True)
    common = ["--no-pager", "--no-legend", "--type", "service"]

    def run(*args: str) -> str:
        rc, out, err = module.run_command([systemctl, *args])
        if rc not in (0, 1):  # 1: nothing matched (some systemd versions)
            module.fail_json(msg=f"systemctl {' '.join(args)} failed (exit {rc}): {err.strip()}")
        return out

    loaded = parse_list_units(run("list-units", "--all", "--plain", *common, *patterns))
    files = parse_list_unit_files(run("list-unit-files", *common, *patterns))
    unloaded = sorted(set(files) - set(loaded))
    states = parse_show(run("show", "--property=Id,ActiveState", *unloaded)) if unloaded else {}
    module.exit_json(changed=False, ansible_facts={"animaflow_services": merge(loaded, files, states)})


if __name__ == "__main__":
    main()
