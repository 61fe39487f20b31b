# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Thin filter over module_utils/recommend.runnable: the control plane calls the same function."""

from __future__ import annotations

from typing import Any

from ansible_collections.animaflow.inference.plugins.module_utils.catalogue import load_catalogue
from ansible_collections.animaflow.inference.plugins.module_utils.recommend import runnable

DOCUMENTATION = r"""
---
name: runnable_backends
short_description: The backends of the catalogue that a node's hardware can run
version_added: "0.1.0"
description:
  - The backends whose accelerators include the node's, whose minimum compute capability its lowest
    NVIDIA GPU meets and whose minimum driver version its driver meets (the recommendation's own
    eligibility), in catalogue order.
positional: _input, catalogue
options:
  _input:
    description: The node's C(animaflow_gpu) facts (or the whole C(ansible_facts)).
    type: dict
    required: true
  catalogue:
    description: The backends catalogue; defaults to the collection's C(meta/backends.yml).
    type: dict
"""

EXAMPLES = r"""
- name: Say what this node can run
  ansible.builtin.debug:
    msg: "can run: {{ ansible_facts.animaflow_gpu | animaflow.inference.runnable_backends(animaflow_backends) | join(', ') }}"
"""

RETURN = r"""
_value:
  description: Backend names.
  type: list
  elements: str
  sample: [llamacpp, ollama]
"""


def runnable_backends(gpu_facts: dict[str, Any], catalogue: dict[str, Any] | None = None) -> list[str]:
    return runnable(gpu_facts, load_catalogue() if catalogue is None else catalogue)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"runnable_backends": runnable_backends}
