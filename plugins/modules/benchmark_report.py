#!/usr/bin/python
# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Thin AnsibleModule wrapper around module_utils/bench_report (runs on the controller)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.animaflow.inference.plugins.module_utils.bench_report import (
    ReportError,
    build_report,
)

DOCUMENTATION = r"""
---
module: benchmark_report
short_description: Write the comparison report of a benchmark run on the controller
version_added: "0.1.0"
description:
  - Reads the C(llm_benchmark) results (schema version 1) that the benchmark playbook fetched into
    O(run_dir) as C(<host>-<backend>.json), one file per node and backend.
  - Writes C(report.md) there, a Markdown report with one table row per node, backend and
    concurrency level (completed and failed requests, output tokens/s, requests/s, TTFT, TPOT and
    E2EL percentiles and, where the server reports its own timings, its TPOT), the goodput and
    decode bound of each, the backends each node skipped and why, the recommendation of each node
    with its reasons and ranking, and the metric formulas.
  - Draws C(output_tokens_per_s.png) and C(ttft_p95_ms.png) (output tokens/s and p95 TTFT against
    concurrency, one line per node and backend) with matplotlib's Agg backend. Without matplotlib
    the Markdown is still written and says the charts were skipped.
  - Files whose content would not change are left alone, so re-running reports no change.
  - Meant to run on the controller, with C(delegate_to=localhost) and C(run_once=true).
author:
  - AnimaFlow Inference contributors
requirements:
  - matplotlib on the controller for the charts (optional).
options:
  run_dir:
    description: The run's directory on the controller, C(<animaflow_controller_dir>/benchmarks/<run_id>).
    type: path
    required: true
  run_id:
    description: Name of the run in the report's title; defaults to the directory's name.
    type: str
  nodes:
    description:
      - One entry per node, in the order the report lists them.
      - C(host) (inventory name, required), C(hardware) (one-line summary), C(benchmarked) (backends
        whose results file is in O(run_dir)), C(skipped) (list of C(backend) and C(reason)),
        C(recommendation) (the output of the C(animaflow.inference.recommend_backend) filter).
    type: list
    elements: dict
    required: true
  failed_hosts:
    description: Nodes that failed before reporting; the report names them.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - animaflow.inference.attributes
notes:
  - In check mode nothing is written and missing results files are ignored (a check-mode benchmark
    measures nothing); RV(changed) says whether a real run would change the report.
"""

EXAMPLES = r"""
- name: Write the comparison report
  animaflow.inference.benchmark_report:
    run_dir: "{{ animaflow_controller_dir }}/benchmarks/{{ benchmark_run_id }}"
    nodes:
      - host: node-a
        hardware: "1x NVIDIA L40S (46068 MiB), driver 550.90"
        benchmarked: [llamacpp, vllm]
        skipped: [{backend: sglang, reason: not installed on this node}]
        recommendation: "{{ hostvars['node-a'].benchmark_recommendation }}"
  delegate_to: localhost
  run_once: true
  register: report

- name: Show the report
  ansible.builtin.debug:
    msg: "{{ report.markdown }}"
"""

RETURN = r"""
report_path:
  description: Path of the Markdown report on the controller.
  returned: always
  type: str
  sample: /srv/animaflow/.state/benchmarks/20261129T101500/report.md
markdown:
  description: The report's Markdown.
  returned: always
  type: str
charts:
  description: Paths of the PNG charts (written, or that would be written in check mode).
  returned: always
  type: list
  elements: str
charts_skipped:
  description: Why there are no charts (matplotlib missing, no results), else null.
  returned: always
  type: str
results_files:
  description: The results files the report was made from.
  returned: always
  type: list
  elements: str
"""

ARGUMENT_SPEC: dict[str, Any] = {
    "run_dir": {"type": "path", "required": True},
    "run_id": {"type": "str"},
    "nodes": {"type": "list", "elements": "dict", "required": True},
    "failed_hosts": {"type": "list", "elements": "str", "default": []},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    run_dir = Path(params["run_dir"])
    for node in params["nodes"]:
        if not isinstance(node.get("host"), str):
            module.fail_json(msg=f"every entry of nodes needs a host name, got {node!r}")
    try:
        report = build_report(
            run_dir,
            params["run_id"] or run_dir.name,
            params["nodes"],
            params["failed_hosts"],
            write=not module.check_mode,
        )
    except ReportError as error:
        module.fail_json(msg=str(error))
    else:
        module.exit_json(**report)


if __name__ == "__main__":
    main()
