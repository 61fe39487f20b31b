# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""A list given with -e, in whichever spelling the command line allows."""

from __future__ import annotations

from numbers import Number
from typing import Any

import yaml
from jinja2.filters import do_int

DOCUMENTATION = r"""
---
name: extra_var_list
short_description: Read a list given with -e as YAML, comma-separated text, a single value or a list
version_added: "0.1.0"
description:
  - Text is read as YAML first (C([llamacpp,ollama]), C([1,2,4])); text that stays text is split on
    commas (C(llamacpp,ollama), C(1,2,4)); a single number becomes a one-item list; a list is kept.
  - Items become trimmed text without the empty ones, or integers (0 where one is not a number).
positional: _input, items
options:
  _input:
    description: The variable as given.
    type: raw
    required: true
  items:
    description: What the items become.
    type: str
    choices: [str, int]
    default: str
"""

EXAMPLES = r"""
- name: Read the run's settings
  ansible.builtin.set_fact:
    benchmark_selected: "{{ benchmark_backends | default(animaflow_backends | list, true) | animaflow.inference.extra_var_list }}"
    benchmark_levels: "{{ benchmark_concurrency | default([1, 2, 4, 8]) | animaflow.inference.extra_var_list('int') }}"
"""

RETURN = r"""
_value:
  description: The items.
  type: list
  sample: [llamacpp, ollama]
"""


def extra_var_list(value: Any, items: str = "str") -> list[Any]:
    if isinstance(value, str):
        value = yaml.safe_load(value)
    if isinstance(value, str):
        value = value.split(",")
    elif isinstance(value, Number):
        value = [value]
    if items == "int":
        return [do_int(item) for item in value or []]
    return [text for text in (str(item).strip() for item in value or []) if text]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"extra_var_list": extra_var_list}
