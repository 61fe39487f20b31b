#!/usr/bin/python
# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Thin AnsibleModule wrapper around module_utils/llamacpp_tune (runs on the node)."""

from __future__ import annotations

import json
import os
import shutil
import signal
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.animaflow.inference.plugins.module_utils.llamacpp_tune import (
    AXES,
    ProcessLauncher,
    SystemdLauncher,
    TuneConfig,
    TuneError,
    bench_measure,
    parse_env_file,
    render_suggestion,
    render_table,
    settings_from_env,
    temporary_log_dir,
    tune,
)

DOCUMENTATION = r"""
---
module: llamacpp_tune
short_description: Find the llama-server settings that serve fastest on this node
version_added: "0.1.0"
description:
  - Sweeps llama-server's settings around the ones the node runs with (its environment file, as the
    llamacpp role derived them), one setting at a time - threads, batch and micro-batch, parallel
    slots, context per slot, load mode (mmap off, mlock on), and other CPU builds given in
    O(builds) - and measures each with the project's benchmark client (C(llm_benchmark)'s core)
    for single-stream decode (tokens/s at concurrency 1) and output throughput at
    O(throughput_concurrency).
  - The derived settings run as a transient llama-server on a spare port of the serving address for
    the whole sweep; each candidate is started beside it, warmed up, measured and stopped. For each
    figure a block measures derived, candidate, candidate, derived (candidate, derived, derived,
    candidate on odd rounds), so the two are compared seconds apart and a steady drift of the machine's
    speed cancels; the block's ratio is the candidate's sum over derived's, and a candidate's score the
    median over O(rounds) rounds, each visiting the candidates in another order. Candidates that beat
    derived by more than O(margin) on either figure are measured again in a second phase
    (O(confirm_rounds)), with the combination of the settings that each won; the figures come from it.
  - A candidate that would not fit in memory beside derived (load mode none or mlock need the model's
    size again) is reported and skipped; one that fails every block, or scores below O(prune_below),
    runs no further rounds.
  - The winner (best geometric mean of both scores, when it beats derived by more than O(margin))
    becomes a host_vars suggestion (RV(suggestion_yaml)) naming the llamacpp role's variables.
    Nothing of the node's configuration is changed.
  - The caller stops the production service first (it competes for the cores) and starts it again
    afterwards. The candidates never outlive the module - transient units with the production
    unit's user and hardening (C(systemd-run), named C(animaflow-llamacpp-tune-*)), or child
    processes as O(user) that die with the module - and are stopped whatever happens.
  - In check mode nothing is started.
author:
  - AnimaFlow Inference contributors
requirements:
  - Python 3.10 or newer on the node; no other packages.
options:
  install_dir:
    description: The llama.cpp install to tune (C(bin/llama-server), and its C(.animaflow-installed) marker).
    type: path
    default: /opt/animaflow/llamacpp/current
  env_file:
    description: The node's llama.cpp settings file; its settings are the derived candidate's.
    type: path
    default: /etc/animaflow/llamacpp.env
  secrets_file:
    description: The node's llama.cpp secrets file (the API key); given to every candidate, never on a command line.
    type: path
    default: /etc/animaflow/llamacpp.secrets.env
  unit_file:
    description: The production unit; the C(systemd) launcher copies its C([Service]) user and hardening.
    type: path
    default: /etc/systemd/system/animaflow-llamacpp.service
  launcher:
    description:
      - C(systemd) runs candidates as transient units (systemd-run) like the production one; C(process)
        as children of the module (as O(user) when run as root); C(auto) picks systemd when systemd runs
        and O(unit_file) exists.
    type: str
    choices: [auto, systemd, process]
    default: auto
  user:
    description: User the C(process) launcher runs candidates as (when the module runs as root).
    type: str
  group:
    description: Group the C(process) launcher runs candidates as.
    type: str
  host:
    description: Address candidates bind; defaults to the settings file's C(LLAMA_ARG_HOST) (a wildcard becomes loopback).
    type: str
  model:
    description: Model name for the requests; defaults to the settings file's C(LLAMA_ARG_ALIAS).
    type: str
  api_key:
    description: API key for the requests; defaults to the secrets file's C(LLAMA_API_KEY).
    type: str
  build:
    description: Name of the installed build (its CPU baseline); defaults to the end of the marker's build key.
    type: str
  builds:
    description: Other llama-server binaries to try, name (a CPU baseline, e.g. C(avx2)) -> path.
    type: dict
    default: {}
  builds_dir:
    description: More builds to try, each C(<builds_dir>/<name>/llama-server).
    type: path
  axes:
    description: Settings to vary.
    type: list
    elements: str
    choices: [threads, batch, parallel, ctx, load_mode, build]
    default: [threads, batch, parallel, ctx, load_mode, build]
  candidates:
    description:
      - Explicit candidates instead of the generated ones, each a dict of settings to change
        (C(threads), C(batch), C(ubatch), C(parallel), C(ctx_per_slot), C(load_mode), C(build)) and an
        optional C(label). The derived settings are always measured too.
    type: list
    elements: dict
  max_ctx_per_slot:
    description: Largest context per slot to try (the model's context).
    type: int
  vcpus:
    description: vCPUs of the node (the thread counts tried); defaults to what Python sees.
    type: int
  rounds:
    description: Rounds over every candidate.
    type: int
    default: 3
  requests:
    description:
      - Requests per measurement at concurrency 1; at O(throughput_concurrency) rounded up to whole batches.
        Each block makes four measurements of each figure.
    type: int
    default: 4
  input_tokens:
    description: Approximate prompt tokens per request.
    type: int
    default: 64
  output_tokens:
    description: Output tokens per request (C(ignore_eos)).
    type: int
    default: 64
  warmup_requests:
    description: Requests after each start, left out of the figures.
    type: int
    default: 1
  throughput_concurrency:
    description: Concurrency of the throughput measurement.
    type: int
    default: 4
  margin:
    description: How much better (fraction) than derived the winner must be on both metrics combined.
    type: float
    default: 0.03
  confirm:
    description:
      - Measure again, in a second phase of O(confirm_rounds) rounds, the candidates that beat derived by
        more than O(margin) on either figure (and the combination of the settings that each won); the
        figures and the winner then come from it.
    type: bool
    default: true
  confirm_rounds:
    description: Rounds of the second phase.
    type: int
    default: 5
  prune_below:
    description:
      - After each round, drop candidates whose combined score is below this fraction of derived (0 keeps all).
        Below 0.5, so one visit during a 2x swing of the machine's speed does not drop a contender.
    type: float
    default: 0.4
  health_timeout:
    description: Seconds a candidate may take to load.
    type: int
    default: 120
  timeout_s:
    description: Seconds one request may take.
    type: float
    default: 120.0
  host_name:
    description: Node name for the suggestion's comments.
    type: str
  run_id:
    description: Benchmark run name for the suggestion's comments.
    type: str
    default: manual
  output_path:
    description: Write the results JSON here on the node.
    type: path
extends_documentation_fragment:
  - animaflow.inference.attributes
notes:
  - Takes about rounds x candidates x (load + warm-up + 8 measurements); with SmolLM2-135M on 2 busy vCPUs,
    3 rounds of the 9 default candidates, 2 requests of 32 tokens, about 10-15 minutes.
"""

EXAMPLES = r"""
- name: Tune llama.cpp on this node (the service stopped around it)
  animaflow.inference.llamacpp_tune:
    host_name: "{{ inventory_hostname }}"
    run_id: 20261130T120000Z
    output_path: /var/lib/animaflow/benchmarks/20261130T120000Z/node-1-llamacpp-tune.json
  register: tuned

- name: Two candidates, one round (a quick check)
  animaflow.inference.llamacpp_tune:
    candidates: [{threads: 1}, {batch: 512, ubatch: 512}]
    rounds: 1
    requests: 2
"""

RETURN = r"""
tune:
  description:
    - kind C(llamacpp_tune), schema_version 1, target, node (vcpus, load averages, launcher), workload,
      derived (the settings), phases (per candidate - label, axis, settings, visits, failed_visits,
      errors, median_decode, median_throughput, ratios_* and score_* (ratio to derived), score_combined,
      dropped_after_round), blocks (every block in order, with the derived and candidate values and
      the ratios), best (per metric), derived_vs_best (per metric, <= 1),
      meets_target (both >= 0.95), winner, suggestion (set and unchanged role variables),
      metric_definitions, started_at, finished_at.
  returned: success, not in check mode
  type: dict
table:
  description: The per-candidate table and derived versus best, as text.
  returned: success, not in check mode
  type: str
suggestion_yaml:
  description: The host_vars suggestion (YAML with the figures in comments).
  returned: success, not in check mode
  type: str
"""

ARGUMENT_SPEC: dict[str, Any] = {
    "install_dir": {"type": "path", "default": "/opt/animaflow/llamacpp/current"},
    "env_file": {"type": "path", "default": "/etc/animaflow/llamacpp.env"},
    "secrets_file": {"type": "path", "default": "/etc/animaflow/llamacpp.secrets.env"},
    "unit_file": {"type": "path", "default": "/etc/systemd/system/animaflow-llamacpp.service"},
    "launcher": {"type": "str", "choices": ["auto", "systemd", "process"], "default": "auto"},
    "user": {"type": "str"},
    "group": {"type": "str"},
    "host": {"type": "str"},
    "model": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "build": {"type": "str"},
    "builds": {"type": "dict", "default": {}},
    "builds_dir": {"type": "path"},
    "axes": {"type": "list", "elements": "str", "choices": list(AXES), "default": list(AXES)},
    "candidates": {"type": "list", "elements": "dict"},
    "max_ctx_per_slot": {"type": "int"},
    "vcpus": {"type": "int"},
    "rounds": {"type": "int", "default": 3},
    "requests": {"type": "int", "default": 4},
    "input_tokens": {"type": "int", "default": 64},
    "output_tokens": {"type": "int", "default": 64},
    "warmup_requests": {"type": "int", "default": 1},
    "throughput_concurrency": {"type": "int", "default": 4},
    "margin": {"type": "float", "default": 0.03},
    "confirm": {"type": "bool", "default": True},
    "confirm_rounds": {"type": "int", "default": 5},
    "prune_below": {"type": "float", "default": 0.4},
    "health_timeout": {"type": "int", "default": 120},
    "timeout_s": {"type": "float", "default": 120.0},
    "host_name": {"type": "str"},
    "run_id": {"type": "str", "default": "manual"},
    "output_path": {"type": "path"},
}

WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def _read(path: str | None) -> str | None:
    if not path or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _installed_build(install_dir: str) -> str:
    """The CPU baseline at the end of the install marker's build key (<version>-<accel>-<arch>-<baseline>)."""
    marker = _read(os.path.join(install_dir, ".animaflow-installed"))
    try:
        key = json.loads(marker or "{}").get("build_key") or ""
    except ValueError:
        key = ""
    return key.rsplit("-", 1)[-1] if key.count("-") >= 3 else "installed"


def _launcher(params: dict[str, Any], unit_text: str | None) -> Any:
    choice = params["launcher"]
    systemd = os.path.isdir("/run/systemd/system") and shutil.which("systemd-run") is not None
    if choice == "auto":
        choice = "systemd" if systemd and unit_text else "process"
    if choice == "systemd":
        if not unit_text:
            raise TuneError(
                f"launcher systemd needs the production unit, and {params['unit_file']} is missing"
            )
        return SystemdLauncher(unit_text)
    return ProcessLauncher(temporary_log_dir(), params["user"], params["group"])


def _terminate(signum: int, _frame: Any) -> None:
    # A stopped playbook sends SIGTERM: leave through the finally blocks that stop the candidates.
    raise SystemExit(f"stopped by signal {signum}")


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, msg="check mode: the sweep started no llama-server")
    binary = os.path.join(params["install_dir"], "bin", "llama-server")
    env_text = _read(params["env_file"])
    if env_text is None or not os.path.isfile(binary):
        module.fail_json(msg=f"llama.cpp is not configured here: need {binary} and {params['env_file']}")
    env = parse_env_file(env_text or "")
    secrets = parse_env_file(_read(params["secrets_file"]) or "")
    vcpus = params["vcpus"] or os.cpu_count() or 1
    build = params["build"] or _installed_build(params["install_dir"])
    others = dict(params["builds"])
    if params["builds_dir"] and os.path.isdir(params["builds_dir"]):
        for name in sorted(os.listdir(params["builds_dir"])):
            path = os.path.join(params["builds_dir"], name, "llama-server")
            if os.path.isfile(path):
                others.setdefault(name, path)
    binaries = {build: binary, **{name: path for name, path in others.items() if name != build}}
    host = params["host"] or env.get("LLAMA_ARG_HOST", "")
    config = TuneConfig(
        binaries=binaries,
        base_env={key: value for key, value in env.items() if key not in secrets},
        derived=settings_from_env(env, build, vcpus),
        model=params["model"] or env.get("LLAMA_ARG_ALIAS") or "default",
        host=WILDCARDS.get(host, host),
        api_key=params["api_key"] or secrets.get("LLAMA_API_KEY") or None,
        secrets_file=params["secrets_file"] if secrets else None,
        vcpus=vcpus,
        axes=params["axes"],
        candidates=params["candidates"],
        max_ctx_per_slot=params["max_ctx_per_slot"],
        rounds=params["rounds"],
        requests=params["requests"],
        input_tokens=params["input_tokens"],
        output_tokens=params["output_tokens"],
        warmup_requests=params["warmup_requests"],
        throughput_concurrency=params["throughput_concurrency"],
        health_timeout_s=params["health_timeout"],
        timeout_s=params["timeout_s"],
        margin=params["margin"],
        confirm=params["confirm"],
        confirm_rounds=params["confirm_rounds"],
        prune_below=params["prune_below"],
    )
    try:
        config.validate()
        config.build_candidates()
        launcher = _launcher(params, _read(params["unit_file"]))
    except (ValueError, TuneError) as error:
        module.fail_json(msg=str(error))
    signal.signal(signal.SIGTERM, _terminate)
    try:
        result = tune(config, launcher, bench_measure(config))
    except TuneError as error:
        module.fail_json(msg=f"the sweep stopped: {error}")
    suggestion = render_suggestion(result, params["host_name"] or os.uname().nodename, params["run_id"])
    changed = False
    if params["output_path"]:
        os.makedirs(os.path.dirname(params["output_path"]) or ".", exist_ok=True)
        with open(params["output_path"], "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        changed = True
    if not result["meets_target"]:
        module.warn(
            "the derived settings reach "
            + ", ".join(f"{metric} {ratio:.1%}" for metric, ratio in result["derived_vs_best"].items())
            + f" of the best found (target 95 %); suggestion: {result['winner']['label']}"
        )
    module.exit_json(changed=changed, tune=result, table=render_table(result), suggestion_yaml=suggestion)


if __name__ == "__main__":
    main()
