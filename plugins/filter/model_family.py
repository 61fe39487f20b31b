# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""model_family and family_models: which model family a served model belongs to, and a family's models.

A bake-off (playbooks/benchmark.yml) compares backends serving one family, each in its own format.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.animaflow.inference.plugins.module_utils.model_formats import family

DOCUMENTATION = r"""
---
name: model_family
short_description: The model family of a model named in animaflow_models
version_added: "0.2.0"
description:
  - The C(family) of the C(animaflow_models) entry named O(_input), else its name; a name that is not
    in the catalogue is its own family.
  - Companion filter C(family_models)(models, family, format) lists the names of a family's entries in
    one format (C(gguf) or C(hf)).
positional: models
options:
  _input:
    description: A model name.
    type: str
    required: true
  models:
    description: The C(animaflow_models) list.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: The family the node's llama.cpp serves
  ansible.builtin.debug:
    msg: "{{ llamacpp_model | animaflow.inference.model_family(animaflow_models) }}"

- name: The GGUF models of a family
  ansible.builtin.debug:
    msg: "{{ animaflow_models | animaflow.inference.family_models('qwen2.5-7b-instruct', 'gguf') }}"
"""

RETURN = r"""
_value:
  description: The family name.
  type: str
"""


def _entries(models: Any) -> list[dict[str, Any]]:
    if not isinstance(models, list) or not all(isinstance(entry, dict) for entry in models):
        raise AnsibleFilterError("animaflow_models must be a list of {name, format, ...} entries")
    return models


def model_family(name: str, models: list[dict[str, Any]]) -> str:
    entry = next((entry for entry in _entries(models) if entry.get("name") == name), None)
    return family(entry) if entry else str(name or "")


def family_models(models: list[dict[str, Any]], wanted: str, fmt: str | None = None) -> list[str]:
    return [
        str(entry["name"])
        for entry in _entries(models)
        if family(entry) == wanted and (fmt is None or (entry.get("format") or "gguf") == fmt)
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"model_family": model_family, "family_models": family_models}
