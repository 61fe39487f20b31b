# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The install plan of a pip-installed backend on one node (see module_utils/wheel_plan.py)."""

from __future__ import annotations

from typing import Any

from ansible_collections.animaflow.inference.plugins.module_utils.wheel_plan import wheel_plan

DOCUMENTATION = r"""
---
name: wheel_plan
short_description: Which CUDA wheel variant of vLLM or SGLang a node gets, and where pip finds it
version_added: "0.1.0"
description:
  - With O(chosen=auto), the newest variant the node's driver runs that exists for the version (else the
    newest it runs). Where pip finds it - the studio's wheelhouse (O(wheelhouse), else
    C(<mirror>/<package>/<version>/<variant>) when O(mirror) is set; pip then works offline), else the
    variant's indexes plus O(index_url). Index credentials go only to pip's environment.
  - When the variant cannot work (unknown, not built for the version, driver too old), C(refusal) says
    why, what exists and the fix.
positional: _input, package, title, version, chosen, driver, index_url, wheelhouse, mirror
options:
  _input:
    description: "The role's variant table, C({name: {min_driver, index_urls, versions}})."
    type: dict
    required: true
  package: {description: The PyPI package (and variable prefix), e.g. C(vllm)., type: str, required: true}
  title: {description: The backend's name in messages, e.g. C(vLLM)., type: str, required: true}
  version: {description: The version to install., type: str, required: true}
  chosen: {description: A variant name, or C(auto)., type: str, required: true}
  driver: {description: The node's NVIDIA driver version (C(0) when none)., type: str, required: true}
  index_url: {description: Index for everything else (a studio PyPI proxy)., type: str, default: ""}
  wheelhouse: {description: The studio's wheelhouse (controller path or URL)., type: str, default: ""}
  mirror: {description: The studio's artifact mirror., type: str, default: ""}
"""

EXAMPLES = r"""
- name: Plan the vLLM install
  ansible.builtin.set_fact:
    plan: >-
      {{ vllm_wheel_variants | animaflow.inference.wheel_plan('vllm', 'vLLM', vllm_version, vllm_wheel_variant,
         ansible_facts.animaflow_gpu.driver_version, vllm_pip_index_url, vllm_wheelhouse, animaflow_artifact_mirror) }}
"""

RETURN = r"""
_value:
  description: C(variant), C(usable), C(refusal) (empty when usable), C(pip_env), C(pip_sources) (without
    credentials), C(wheelhouse), C(wheelhouse_remote) (pip reads it by URL), C(wheelhouse_node) (where a
    controller wheelhouse is copied on the node).
  type: dict
"""


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"wheel_plan": wheel_plan}
