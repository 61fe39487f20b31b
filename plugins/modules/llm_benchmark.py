#!/usr/bin/python
# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Thin AnsibleModule wrapper around the benchmark core in module_utils/llm_bench."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench import (
    DEFAULTS,
    BenchConfig,
    run_benchmark,
)

DOCUMENTATION = r"""
---
module: llm_benchmark
short_description: Benchmark an OpenAI-compatible LLM server from the node it runs on
version_added: "0.1.0"
description:
  - Streams C(POST /v1/chat/completions) requests (C(stream=true),
    C(stream_options.include_usage=true)) at fixed concurrency levels, closed loop, over one
    keep-alive HTTP/1.1 client written with the Python standard library only.
  - Reports per level TTFR, TTFT, TPOT, ITL and E2EL (mean, median, p90, p95, p99, max), request and
    output token throughput, and failed requests by kind (C(http_<status>), C(timeout),
    C(connection), C(protocol)); failures are counted, never dropped.
  - Output tokens come from the server's C(usage); when a server sends none the content chunks are
    counted instead and RV(benchmark.token_source) says so.
  - Finds the goodput (requests per second that met every SLO, judged per request on its TTFT and
    TPOT), the highest concurrency meeting the p95 SLOs with no failures
    (RV(benchmark.max_concurrency_within_slo)), and compares
    single-stream decode speed with the bound the memory bandwidth sets (bandwidth / model bytes),
    that is the read bandwidth of the host's RAM with the server's thread count for a CPU server and
    the GPUs' figure for a GPU server (O(memory_bandwidth_source)). A single stream faster than its bound by
    more than 5 % gets no fraction but a warning that the bound is wrong.
  - Every prompt differs from the others from its first word, so a prefix cache can serve only the
    chat template's own opening (system prompt, role markers), which every request shares; each level
    reports the prompt tokens the server counted and those it served from its cache.
  - Chunks are stamped when their bytes arrived (the kernel's receive timestamp), and a level whose
    client cannot keep up is measured again split over more processes; every level reports the
    client's CPU and stamp lag, with warnings past 0.7 core per process or 2 ms p99 lag.
  - In check mode nothing is sent.
author:
  - AnimaFlow Inference contributors
requirements:
  - Python 3.10 or newer on the node (Ubuntu 22.04, Debian 12 and later); no other packages.
options:
  base_url:
    description: The server's root URL; a trailing C(/v1) is accepted.
    type: str
    required: true
  model:
    description: The model name the server serves (the request's C(model) field).
    type: str
    required: true
  api_key:
    description: Sent as an C(Authorization) header (C(Bearer <api_key>)) when given.
    type: str
  concurrency:
    description: Concurrency levels to run, in this order.
    type: list
    elements: int
    default: [1, 2, 4, 8]
  requests_per_level:
    description: Requests sent at each level.
    type: int
    default: 8
  input_tokens:
    description: Approximate prompt length in tokens (one filler word per token).
    type: int
    default: 128
  output_tokens:
    description:
      - C(max_tokens) of every request.
      - For O(workload=structured) a cap, at least 256 - a reply ends with its JSON record, and one
        cut at the cap counts as invalid.
    type: int
    default: 64
  warmup_requests:
    description: Requests sent one at a time before the first level and left out of the results.
    type: int
    default: 2
  ignore_eos:
    description:
      - Send C(ignore_eos=true) so every request generates exactly O(output_tokens).
      - Must be C(false) for O(workload=structured) (the module fails otherwise) - it would keep the server
        generating after the JSON record, where the schema's grammar allows only the end of the reply.
    type: bool
    default: true
  slo_ttft_ms:
    description: p95 TTFT a level must stay under to count for goodput.
    type: float
    default: 1000.0
  slo_tpot_ms:
    description: p95 TPOT a level must stay under to count for goodput.
    type: float
    default: 100.0
  timeout_s:
    description: Seconds one request may take, from sending to its last byte.
    type: float
    default: 120.0
  seed:
    description: Seed for the prompts' filler words.
    type: int
    default: 0
  workload:
    description:
      - What every request asks for.
      - C(chat) - a streamed chat completion of a prompt of O(input_tokens) words.
      - C(structured) - the same prompt asking for a shot record as JSON, with C(response_format) of
        type C(json_schema) (strict) and a fixed schema (C(structured) in RV(benchmark.workload));
        every reply is parsed and checked against the schema, and each level reports how many were
        valid (C(structured) in each of RV(benchmark.levels)). An invalid reply is a completed
        request, not a failed one. Needs O(ignore_eos=false) and O(output_tokens) of at least 256.
      - C(shared_prefix) - one system prompt of O(shared_prefix_tokens) words shared by every request
        of the run, then a distinct user message of O(input_tokens) words. After each level as many
        control requests, with system prompts as long but each its own, run at the same concurrency;
        C(prefix) in each of RV(benchmark.levels) sets TTFT with the shared prefix against TTFT
        without one.
    type: str
    choices: [chat, structured, shared_prefix]
    default: chat
  shared_prefix_tokens:
    description: Length in words (about one token each) of the shared system prompt of O(workload=shared_prefix).
    type: int
    default: 1024
  output_path:
    description: Write the results JSON to this path on the node.
    type: path
  backend:
    description: Backend name recorded in RV(benchmark.target.backend).
    type: str
  backend_version:
    description: Backend version recorded in RV(benchmark.target.version).
    type: str
  node:
    description: Inventory name of the node, recorded in RV(benchmark.target.node) so that results are
      matched to their node exactly.
    type: str
  model_entry:
    description:
      - The served model's entry of C(animaflow_models) (name, format, file or hf_repo, family,
        quantisation). Its family, format and quantisation (read from a GGUF file name when not
        declared) go into RV(benchmark.target), so a comparison can name what it compared.
    type: dict
  model_bytes:
    description: Size of the model's weights in bytes; needed for RV(benchmark.decode_bound).
    type: int
  memory_bandwidth_gbps:
    description:
      - Memory bandwidth in GB/s for the decode bound, used as given (source C(given)) instead of
        measuring or looking one up. For a tensor-parallel server, the sum over the GPUs it uses.
    type: float
  memory_bandwidth_source:
    description:
      - Where the decode bound's bandwidth comes from when O(memory_bandwidth_gbps) is not given.
      - C(cpu) measures the host's read bandwidth with O(threads) threads (source C(measured_cpu_read)),
        for llama.cpp or Ollama on CPU.
      - C(gpu) takes the datasheet figure of the GPUs in O(gpu) (source C(gpu_datasheet)), or measures
        GPU 0 with O(gpu_python) (source C(gpu_measured)); a GPU the table does not know gives no
        bound, never the host's figure.
      - C(auto) is C(gpu) when O(gpu) shows a usable GPU (accelerator not C(cpu)), else C(cpu); pass
        C(cpu) for a CPU build serving on a GPU node.
    type: str
    choices: [auto, cpu, gpu]
    default: auto
  threads:
    description:
      - Threads reading at once for the C(cpu) measurement; give the server's thread count
        (llama.cpp C(--threads)). Default the node's physical cores, llama.cpp's and Ollama's own default.
    type: int
  gpus_used:
    description:
      - GPUs the server spreads the model over (vLLM C(--tensor-parallel-size), SGLang C(--tp-size));
        default every GPU in O(gpu)'s C(gpus). Each holds C(model_bytes / gpus_used) of the weights.
    type: int
  gpu_split:
    description:
      - How the server splits the model over O(gpus_used) GPUs. C(tensor) (vLLM, SGLang) - they read
        their shares at once, the bound is O(gpus_used) x the slowest GPU's figure. C(layer) (llama.cpp,
        Ollama) - they read their layers one after another, the bound is one GPU's figure.
      - Default C(layer) when O(backend) is C(llamacpp) or C(ollama), else C(tensor).
    type: str
    choices: [tensor, layer]
  gpu_python:
    description:
      - A Python interpreter with torch (the vLLM or SGLang virtualenv's) to time a device-to-device
        copy and a reduction on GPU 0 for C(gpu); on failure the datasheet figure is used and the
        method says why. Unproven on real hardware by this collection's tests.
    type: path
  client_processes:
    description:
      - Worker processes the client spreads each level's streams over. Default one per 64 streams, at
        most the node's CPUs, and twice as many when a level finds one process saturated (the result's
        C(client) figures say so).
    type: int
  gpu:
    description: The node's C(animaflow_gpu) facts, copied into RV(benchmark.host.gpu).
    type: dict
  cpu:
    description: The node's C(animaflow_cpu) facts, copied into RV(benchmark.host.cpu).
    type: dict
extends_documentation_fragment:
  - animaflow.inference.attributes
notes:
  - The C(cpu) bandwidth is read-only - each thread scans its own buffer with libc C(memchr) through
    ctypes (which releases the GIL) for a byte it does not hold; best of five rounds of about 0.1 s
    after a calibration round. The buffers total max(256 MiB, 4 x the L3 cache), at most a quarter of
    the available memory; RV(benchmark.host.memory_bandwidth_method) says what was timed.
  - Connections are opened before each level's clock starts and reused across requests and levels.
"""

EXAMPLES = r"""
- name: Benchmark the llama.cpp server on this node
  animaflow.inference.llm_benchmark:
    base_url: "http://{{ animaflow_bind_address }}:{{ animaflow_serve_port }}"
    model: "{{ animaflow_model }}"
    api_key: "{{ animaflow_api_key }}"
    backend: llamacpp
    gpu: "{{ ansible_facts.animaflow_gpu }}"
    cpu: "{{ ansible_facts.animaflow_cpu }}"
    model_bytes: 4920734176
    # A GPU build: the bound is one GPU's datasheet figure (llama.cpp splits by layers). For a CPU
    # build, memory_bandwidth_source: cpu and threads: the server's --threads.
    memory_bandwidth_source: gpu
    output_path: /var/lib/animaflow/benchmarks/llamacpp.json
  register: bench

- name: Benchmark vLLM over 4 GPUs with tensor parallelism, measuring GPU 0 with the venv's torch
  animaflow.inference.llm_benchmark:
    base_url: http://127.0.0.1:8000
    model: qwen2.5-32b-instruct
    backend: vllm
    gpu: "{{ ansible_facts.animaflow_gpu }}"
    model_bytes: 65527752704
    memory_bandwidth_source: gpu
    gpus_used: 4
    gpu_python: /opt/animaflow/vllm/current/venv/bin/python

- name: A heavier sweep with a tighter latency target
  animaflow.inference.llm_benchmark:
    base_url: http://127.0.0.1:8000/v1
    model: qwen2.5-7b-instruct
    concurrency: [1, 4, 16, 64]
    requests_per_level: 64
    input_tokens: 512
    output_tokens: 128
    slo_ttft_ms: 500
    slo_tpot_ms: 50

- name: Show the goodput
  ansible.builtin.debug:
    msg: >-
      goodput {{ bench.benchmark.goodput.request_per_s }} requests/s inside the SLOs; up to
      {{ bench.benchmark.max_concurrency_within_slo.concurrency }} concurrent requests within the SLOs
"""

RETURN = r"""
benchmark:
  description:
    - Results schema version 2; C(metric_definitions) holds the formula of every number.
    - The same JSON as O(output_path). Not called C(results), which Ansible reserves for loops and
      renames.
  returned: success, not in check mode
  type: dict
  contains:
    schema_version:
      description: Version of this layout.
      type: int
      sample: 2
    target:
      description: >-
        base_url, backend, version, model, node, model_family, model_format, quantisation and
        quantisation_source (declared, file name, repository name, assumed or unknown).
      type: dict
    host:
      description: >-
        gpu and cpu facts, memory_bandwidth_gbps, memory_bandwidth_source, memory_bandwidth_method,
        model_bytes.
      type: dict
    workload:
      description:
        - The options the run used, the prompt method, measured_input (prompt and cached prompt tokens
          as the server counted them) and how many connections it opened.
        - kind (C(chat), C(structured) or C(shared_prefix)); for C(structured) also structured
          (schema_name, schema, schema_sha256, method); for C(shared_prefix) also shared_prefix_tokens
          and shared_prefix_method.
      type: dict
    levels:
      description:
        - One entry per concurrency level, with concurrency, requests, completed, failed,
          errors (kind to count), error_examples, duration_s, request_per_s, total_output_tokens,
          output_tokens_per_s, token_source, decode_tokens_per_s_median, good_requests and
          goodput_request_per_s (requests inside every SLO, per second).
        - ttfr_ms, ttft_ms, ttfat_ms (first answer token, after any reasoning), tpot_ms, itl_ms,
          e2el_ms, prompt_tokens and cached_prompt_tokens, each with count, mean, median, p90, p95, p99
          and max; requests_with_reasoning and requests_without_answer.
        - client - processes, cpu_cores, cpu_cores_per_process_max, stamps (C(kernel) or C(read)),
          stamp_lag_ms (count, median, p99, max), warnings, saturated and rerun_from.
        - structured (workload C(structured) only) - checked, valid, invalid and invalid_examples (up to
          three reasons).
        - prefix (workload C(shared_prefix) only; the level's own figures are the shared-prefix
          requests') - shared_prefix_tokens, priming_requests, unique (the unique-prefix controls'
          requests, completed, failed, errors, duration_s, ttft_ms, prompt_tokens, cached_prompt_tokens,
          client), ttft_p50_ratio_unique_over_shared, ttft_p95_ratio_unique_over_shared and
          cache_warning.
      type: list
      elements: dict
    client:
      description: How the client stamped, the warning thresholds and every level's client warnings.
      type: dict
    token_source:
      description: C(usage) when every count came from the server, C(chunks) or C(mixed) otherwise.
      type: str
      sample: usage
    token_source_note:
      description: What the token source means for the numbers.
      type: str
    goodput:
      description: >-
        The level with the most requests per second that met every SLO (each request's TTFT and TPOT,
        and a valid reply where replies are checked): request_per_s, concurrency, good_requests,
        requests and the SLOs; every level carries its own goodput_request_per_s and good_requests.
      type: dict
    max_concurrency_within_slo:
      description: >-
        concurrency (highest level meeting both p95 SLOs with no failures, null if none did),
        request_per_s and output_tokens_per_s at that level, the SLOs, next_level_tested and
        levels_meeting_slo.
      type: dict
    decode_bound:
      description:
        - memory_bandwidth_gbps, source (C(measured_cpu_read), C(gpu_datasheet), C(gpu_measured),
          C(given) or null), method, tokens_per_s_upper (bandwidth / model_bytes),
          single_stream_decode_tokens_per_s, achieved_fraction, warning, note; weights_bytes_per_gpu
          for a GPU bound. Nulls without model_bytes or a bandwidth.
        - achieved_fraction is null and warning says why when one stream beat the bound by more than
          5 % - the bound is then wrong (the host's bandwidth for a GPU server, or model_bytes is not
          what one token reads).
      type: dict
    metric_definitions:
      description: Formula of each metric.
      type: dict
    started_at:
      description: UTC time the run started (ISO 8601).
      type: str
    finished_at:
      description: UTC time the run finished (ISO 8601).
      type: str
"""

ARGUMENT_SPEC: dict[str, Any] = {
    "base_url": {"type": "str", "required": True},
    "model": {"type": "str", "required": True},
    "api_key": {"type": "str", "no_log": True},
    "concurrency": {"type": "list", "elements": "int", "default": DEFAULTS["concurrency"]},
    "requests_per_level": {"type": "int", "default": DEFAULTS["requests_per_level"]},
    "input_tokens": {"type": "int", "default": DEFAULTS["input_tokens"]},
    "output_tokens": {"type": "int", "default": DEFAULTS["output_tokens"]},
    "warmup_requests": {"type": "int", "default": DEFAULTS["warmup_requests"]},
    "ignore_eos": {"type": "bool", "default": DEFAULTS["ignore_eos"]},
    "slo_ttft_ms": {"type": "float", "default": DEFAULTS["slo_ttft_ms"]},
    "slo_tpot_ms": {"type": "float", "default": DEFAULTS["slo_tpot_ms"]},
    "timeout_s": {"type": "float", "default": DEFAULTS["timeout_s"]},
    "seed": {"type": "int", "default": DEFAULTS["seed"]},
    "output_path": {"type": "path"},
    "backend": {"type": "str"},
    "backend_version": {"type": "str"},
    "node": {"type": "str"},
    "model_entry": {"type": "dict"},
    "model_bytes": {"type": "int"},
    "memory_bandwidth_gbps": {"type": "float"},
    "memory_bandwidth_source": {"type": "str", "choices": ["auto", "cpu", "gpu"], "default": "auto"},
    "threads": {"type": "int"},
    "gpus_used": {"type": "int"},
    "gpu_split": {"type": "str", "choices": ["tensor", "layer"]},
    "gpu_python": {"type": "path"},
    "client_processes": {"type": "int"},
    "gpu": {"type": "dict"},
    "cpu": {"type": "dict"},
    "workload": {
        "type": "str",
        "choices": ["chat", "structured", "shared_prefix"],
        "default": DEFAULTS["workload"],
    },
    "shared_prefix_tokens": {"type": "int", "default": DEFAULTS["shared_prefix_tokens"]},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, msg="check mode: no requests sent")
    config = BenchConfig(**{name: params[name] for name in ARGUMENT_SPEC if name != "output_path"})
    try:
        config.validate()
    except ValueError as error:
        module.fail_json(msg=str(error))
    results = asyncio.run(run_benchmark(config))
    for level in results["levels"]:
        if level["failed"]:
            kinds = ", ".join(f"{kind}={count}" for kind, count in level["errors"].items())
            module.warn(
                f"concurrency {level['concurrency']}: {level['failed']} of {level['requests']} requests failed ({kinds})"
            )
        structured = level.get("structured")
        if structured and structured["invalid"]:
            module.warn(
                f"concurrency {level['concurrency']}: {structured['invalid']} of {structured['checked']} replies "
                f"did not meet the schema ({'; '.join(structured['invalid_examples'])})"
            )
        if (level.get("prefix") or {}).get("cache_warning"):
            module.warn(f"concurrency {level['concurrency']}: {level['prefix']['cache_warning']}")
    if results["decode_bound"].get("warning"):
        module.warn(f"decode bound: {results['decode_bound']['warning']}")
    for warning in results["client"]["warnings"]:
        module.warn(f"benchmark client: {warning}")
    changed = False
    if params["output_path"]:
        directory = os.path.dirname(params["output_path"])
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(params["output_path"], "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
        changed = True
    module.exit_json(changed=changed, benchmark=results)


if __name__ == "__main__":
    main()
