# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""CMake cache entries as command-line arguments (the llamacpp role's build)."""

from __future__ import annotations

from typing import Any

DOCUMENTATION = r"""
---
name: cmake_defines
short_description: Turn a dict of CMake cache entries into -DNAME=VALUE arguments
version_added: "0.1.0"
description:
  - One C(-DNAME=VALUE) argument per entry, in the dict's order; values are written as text.
positional: _input
options:
  _input:
    description: CMake cache entries, name to value.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Configure the build
  ansible.builtin.command:
    argv: "{{ ['cmake', '-S', 'src', '-B', 'build'] + {'GGML_CUDA': 'ON', 'GGML_NATIVE': 'OFF'} | animaflow.inference.cmake_defines }}"
"""

RETURN = r"""
_value:
  description: The arguments.
  type: list
  elements: str
  sample: [-DGGML_CUDA=ON, -DGGML_NATIVE=OFF]
"""


def cmake_defines(flags: dict[str, Any]) -> list[str]:
    return [f"-D{name}={value}" for name, value in flags.items()]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"cmake_defines": cmake_defines}
