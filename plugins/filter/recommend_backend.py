# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Thin filter over module_utils/recommend: the logic lives there so the control plane shares it."""

from __future__ import annotations

from typing import Any

from ansible_collections.animaflow.inference.plugins.module_utils.catalogue import load_catalogue
from ansible_collections.animaflow.inference.plugins.module_utils.recommend import recommend

DOCUMENTATION = r"""
---
name: recommend_backend
short_description: Rank the inference backends a node can run and pick one
version_added: "0.1.0"
description:
  - Drops the backends the node's hardware cannot run (accelerator, minimum compute capability and
    driver from the backends catalogue), orders the rest by the product brief's prior (no GPU
    llama.cpp or Ollama; AMD Ollama or llama.cpp; small studio Ollama; many users on NVIDIA vLLM or
    SGLang; pipeline workloads SGLang), then lets measured goodput and throughput at the studio's
    concurrency override the prior when at least two eligible backends were benchmarked.
  - Scores are 0-100, up to 40 from the prior and up to 60 from measurements. Every score comes with
    plain sentences saying why, numbers included.
positional: _input, benchmark_results, studio_profile, catalogue
options:
  _input:
    description: The node's C(animaflow_gpu) facts (or the whole C(ansible_facts)).
    type: dict
    required: true
  benchmark_results:
    description:
      - C(llm_benchmark) results of this node, as a list (each names its backend in
        C(target.backend)) or a dict of backend name to results. Empty for the prior alone.
    type: raw
  studio_profile:
    description: C(animaflow_studio) with C(artists), C(concurrent_users) and C(workload).
    type: dict
  catalogue:
    description: The backends catalogue; defaults to the collection's C(meta/backends.yml).
    type: dict
"""

EXAMPLES = r"""
- name: Pick this node's backend from its facts and benchmark results
  ansible.builtin.set_fact:
    animaflow_recommendation: >-
      {{ ansible_facts.animaflow_gpu
         | animaflow.inference.recommend_backend(bench_results, animaflow_studio) }}

- name: Prior only (nothing benchmarked yet)
  ansible.builtin.debug:
    msg: "{{ (ansible_facts.animaflow_gpu | animaflow.inference.recommend_backend([], animaflow_studio)).choice }}"
"""

RETURN = r"""
_value:
  description: The recommendation.
  type: dict
  contains:
    choice:
      description: The best eligible backend, null when none can run.
      type: str
      sample: vllm
    ranking:
      description: Every catalogue backend, best first, with backend, score, eligible and reasons.
      type: list
      elements: dict
    reasons:
      description: Why this choice, including when measurements overrode the prior.
      type: list
      elements: str
"""


def recommend_backend(
    gpu_facts: dict[str, Any],
    benchmark_results: Any = None,
    studio_profile: dict[str, Any] | None = None,
    catalogue: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if catalogue is None:
        catalogue = load_catalogue()
    return recommend(gpu_facts, benchmark_results, studio_profile, catalogue)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"recommend_backend": recommend_backend}
