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
    driver from the backends catalogue), orders the rest by the product brief's prior (the README's
    "Which backend should I choose?" - 1-10 artists on NVIDIA Ollama, then vLLM; more artists on
    NVIDIA vLLM, then SGLang; pipeline workloads on NVIDIA SGLang; no NVIDIA GPU Ollama for a small
    studio, llama.cpp for a large one), then lets measured goodput and throughput at the studio's
    concurrency override the prior when at least two eligible backends were benchmarked with one model
    family and the studio's workload.
  - A backend measured to meet the SLOs at the studio's concurrency ranks above every backend that
    did not or was not measured. Scores are 0-100, up to 40 from the prior and up to 60 from
    measurements. Every score comes with plain sentences saying why, numbers included; the reasons
    name the formats and quantisations compared and their quality cost, and say so with both sets of
    numbers whenever the choice is not the fastest backend measured.
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
    description: >-
      C(animaflow_studio) with C(artists), C(concurrent_users) and C(workload) (C(interactive),
      C(pipeline) or C(shared_prefix): the results of the benchmark workload C(chat), C(structured) or
      C(shared_prefix) decide).
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
      description: >-
        Every catalogue backend, best first, with backend, score, prior (its prior points), eligible,
        reasons and, when measured, measured (goodput, within_slo, throughput, at_concurrency).
      type: list
      elements: dict
    reasons:
      description: Why this choice, including when measurements overrode the prior.
      type: list
      elements: str
    workload:
      description: The benchmark workload whose results were compared.
      type: str
      sample: chat
    compared:
      description: >-
        What was compared, one entry per measured backend - backend, model, model_family,
        model_format, quantisation and quality (what the quantisation costs, in words).
      type: list
      elements: dict
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
