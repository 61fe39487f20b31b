# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The tensor-parallel size of a vLLM or SGLang server on a node."""

from __future__ import annotations

from typing import Any

from jinja2.filters import do_int

DOCUMENTATION = r"""
---
name: tensor_parallel_size
short_description: How many GPUs one vLLM or SGLang server splits the model over
version_added: "0.1.0"
description:
  - The requested size when it is above 0. Otherwise the largest power of two up to 64 that is no more
    than the node's GPUs and divides the model's attention heads (any power of two when the heads are
    unknown, 0); at least 1. Powers of two only, as attention heads and NCCL rings split evenly.
positional: _input, attention_heads, requested
options:
  _input:
    description: The node's GPU count (C(animaflow_gpu.count)).
    type: int
    required: true
  attention_heads:
    description: The model's attention heads; 0 when unknown.
    type: int
    default: 0
  requested:
    description: The size the inventory asks for; 0 or less chooses.
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Size vLLM on this node
  ansible.builtin.set_fact:
    vllm_tp: "{{ ansible_facts.animaflow_gpu.count | animaflow.inference.tensor_parallel_size(32, vllm_tensor_parallel_size) }}"
"""

RETURN = r"""
_value:
  description: The tensor-parallel size.
  type: int
  sample: 8
"""


def tensor_parallel_size(gpu_count: Any, attention_heads: Any = 0, requested: Any = 0) -> int:
    if do_int(requested) > 0:
        return do_int(requested)
    gpus, heads = do_int(gpu_count), do_int(attention_heads)
    fits = [p for p in (1, 2, 4, 8, 16, 32, 64) if p <= gpus and (heads == 0 or heads % p == 0)]
    return fits[-1] if fits else 1


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"tensor_parallel_size": tensor_parallel_size}
