#!/usr/bin/env python3
"""Do the llamacpp role's derived settings reach >= 95 % of the best llama-server settings on this machine?

Renders the role's own derivation (roles/llamacpp/vars/main.yml with its defaults, the settings role's
defaults and, unless --no-inventory, inventories/local/group_vars/farm.yml) for this machine's CPU facts,
then runs the sweep the benchmark playbook runs with -e benchmark_tune=true (module_utils/llamacpp_tune:
one setting changed at a time around the derived ones, each candidate measured beside the derived server
in blocks derived, candidate, candidate, derived; median over rounds; the candidates that look better
measured again in a second phase) against real llama-server processes on 127.0.0.101, and prints each
candidate and derived / best for single-stream decode and for concurrency-4 throughput, with `uptime`
before and after.

    .venv/bin/python benchmarks/llamacpp_tune.py [--rounds 3] [--requests 4] [--axes threads,batch]
        [--build avx2=/path/to/llama-server] [--model PATH] [--json FILE] [--suggestion FILE]

The derived build is the controller cache's (<cache>/llamacpp/builds/<build key>/llama-server, the key the
role derives here); other CPU baselines of the same version found there (or given with --build) are the
build axis. With SmolLM2-135M on 2 busy vCPUs, --rounds 3 --requests 2 --output-tokens 32 takes 30-50 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".collections"))  # the venv's .pth does this; plain python needs it

from ansible_collections.animaflow.inference.plugins.module_utils.cpu_parsers import (  # noqa: E402
    parse_cpuinfo,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llamacpp_tune import (  # noqa: E402
    AXES,
    ProcessLauncher,
    TuneConfig,
    bench_measure,
    render_suggestion,
    render_table,
    settings_from_env,
    temporary_log_dir,
    tune,
)

MODEL = REPO / ".cache" / "mirror" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
ROLE_FILES = (
    "roles/settings/defaults/main.yml",
    "roles/llamacpp/defaults/main.yml",
    "roles/llamacpp/vars/main.yml",
)
INVENTORY = REPO / "inventories" / "local" / "group_vars" / "farm.yml"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def role_derivation(model: Path, context: int, users: int | None, use_inventory: bool) -> dict[str, Any]:
    """What the role would write into the environment file on this machine, and its build key."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    loader = DataLoader()
    variables: dict[str, Any] = {}
    files = [REPO / name for name in ROLE_FILES[:2]]
    files += [INVENTORY] if use_inventory else []
    files.append(REPO / ROLE_FILES[2])
    for path in files:
        variables.update(loader.load_from_file(str(path), trusted_as_template=True) or {})
    cpu = parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8"), platform.machine())
    variables["ansible_facts"] = {
        "architecture": platform.machine(),
        "processor_cores": cpu["physical_cores"],
        "animaflow_cpu": cpu,
        "animaflow_gpu": {"accelerator": "cpu", "gpus": []},
    }
    variables["animaflow_model"] = "tuned"
    variables["animaflow_api_key"] = ""
    variables["backend_model"] = {"path": str(model), "item": {"context": context}}
    if users is not None:
        variables["animaflow_studio"] = {"concurrent_users": users}
    templar = Templar(loader=loader, variables=variables)

    def render(name: str) -> Any:
        return templar.template(trust_as_template("{{ " + name + " }}"))

    env = {
        key: str(value)
        for key, value in render("_llamacpp_settings_environment | combine(llamacpp_extra_env)").items()
    }
    return {
        "env": env,
        "baseline": render("_llamacpp_cpu_baseline"),
        "build_key": render("_llamacpp_build_key"),
        "cpu": cpu,
    }


def cache_dir() -> Path:
    return Path(os.environ.get("ANIMAFLOW_CACHE_DIR") or REPO / ".cache" / "controller")


def builds_for(build_key: str, baseline: str, extra: list[str]) -> dict[str, str]:
    binaries: dict[str, str] = {}
    derived = cache_dir() / "llamacpp" / "builds" / build_key / "llama-server"
    if not derived.exists():
        sys.exit(f"no {derived}: build it first (ansible-playbook playbooks/install.yml -e backend=llamacpp)")
    binaries[baseline] = str(derived)
    prefix = build_key[: -len(baseline)]
    for other in sorted((cache_dir() / "llamacpp" / "builds").glob(f"{prefix}*/llama-server")):
        binaries.setdefault(other.parent.name[len(prefix) :], str(other))
    for item in extra:
        name, _, path = item.partition("=")
        binaries[name] = path
    return binaries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--model-context", type=int, default=8192, help="the model's context (SmolLM2: 8192)")
    parser.add_argument(
        "--concurrent-users", type=int, help="animaflow_studio.concurrent_users (default: inventory's)"
    )
    parser.add_argument(
        "--no-inventory", action="store_true", help="role defaults only, no inventories/local"
    )
    parser.add_argument("--host", default="127.0.0.101")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--input-tokens", type=int, default=64)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--axes", default=",".join(AXES))
    parser.add_argument("--build", action="append", default=[], help="NAME=PATH: another llama-server to try")
    parser.add_argument(
        "--candidates",
        type=json.loads,
        help='explicit candidates instead of the axes, e.g. \'[{"load_mode": "mmap+mlock"}, {"ctx_per_slot": 2048}]\'',
    )
    parser.add_argument(
        "--no-confirm", action="store_true", help="skip the second phase (contenders measured again)"
    )
    parser.add_argument("--confirm-rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the full results here")
    parser.add_argument("--suggestion", type=Path, help="write the host_vars suggestion here")
    args = parser.parse_args()
    if not args.model.exists():
        sys.exit(f"no model {args.model} (tests/infra/prepare-mirror.py puts it in the mirror)")

    args.model = args.model.resolve()  # candidates run from /
    role = role_derivation(args.model, args.model_context, args.concurrent_users, not args.no_inventory)
    binaries = builds_for(role["build_key"], role["baseline"], args.build)
    vcpus = os.cpu_count() or 1
    env = {key: value for key, value in role["env"].items() if key != "LLAMA_API_KEY"}
    config = TuneConfig(
        binaries=binaries,
        base_env=env,
        derived=settings_from_env(env, role["baseline"], vcpus),
        model=env["LLAMA_ARG_ALIAS"],
        host=args.host,
        vcpus=vcpus,
        axes=[axis for axis in args.axes.split(",") if axis],
        candidates=args.candidates,
        max_ctx_per_slot=args.model_context,
        rounds=args.rounds,
        requests=args.requests,
        input_tokens=args.input_tokens,
        output_tokens=args.output_tokens,
        confirm=not args.no_confirm,
        confirm_rounds=args.confirm_rounds,
    )
    cpu = role["cpu"]
    print(f"uptime: {uptime()}")
    print(f"CPU: {cpu['model']}, {cpu['physical_cores']} physical cores, {cpu['logical_cpus']} logical CPUs")
    print(
        f"role's environment here: {json.dumps({k: v for k, v in env.items() if k.startswith('LLAMA_ARG_') and k not in ('LLAMA_ARG_MODEL',)})}"
    )
    print(f"builds: {json.dumps(binaries)}")
    print(f"candidates: {', '.join(candidate.label for candidate in config.build_candidates())}", flush=True)
    launcher = ProcessLauncher(temporary_log_dir())
    result = tune(config, launcher, bench_measure(config), log=lambda line: print(f"  {line}", flush=True))
    print()
    print(render_table(result))
    print(f"uptime: {uptime()}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"results: {args.json}")
    suggestion = render_suggestion(result, platform.node(), "benchmarks/llamacpp_tune.py")
    if args.suggestion:
        args.suggestion.write_text(suggestion, encoding="utf-8")
        print(f"suggestion: {args.suggestion}")
    else:
        print(suggestion)
    return 0


if __name__ == "__main__":
    sys.exit(main())
