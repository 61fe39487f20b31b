# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The backends catalogue for plays and roles, from the collection itself: no path to compute."""

from __future__ import annotations

from typing import Any

from ansible.plugins.lookup import LookupBase

from ansible_collections.animaflow.inference.plugins.module_utils.catalogue import load_catalogue

DOCUMENTATION = r"""
---
name: catalogue
short_description: The collection's backends catalogue (meta/backends.yml)
version_added: "0.1.0"
description:
  - Returns C(animaflow_backends) from the collection's C(meta/backends.yml), wherever the collection
    is installed. Takes no terms.
"""

EXAMPLES = r"""
- name: Load the backends catalogue
  ansible.builtin.set_fact:
    animaflow_backends: "{{ lookup('animaflow.inference.catalogue') }}"
"""

RETURN = r"""
_raw:
  description: Backend name to its entry (title, accelerators, min_compute_capability, min_driver_version, health_path).
  type: list
  elements: dict
"""


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        return [load_catalogue()]
