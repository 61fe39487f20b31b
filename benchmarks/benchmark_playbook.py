#!/usr/bin/env python3
"""Run playbooks/benchmark.yml against llama.cpp serving SmolLM2-135M on the local demo node, print the report.

    benchmarks/benchmark_playbook.py [--backends llamacpp[,ollama...]] [--concurrency 1,2,4]
        [--requests-per-level 8] [--input-tokens 128] [--output-tokens 64] [--run-id ID]

The node is the one `make demo` brings up (inventories/local: animaflow-local-node serving on
127.0.0.21:8000, model smollm2-135m-instruct). When nothing answers there, tests/infra/demo.sh is
run first (it builds llama-server unless the controller cache already holds the build). The results
and the report land in <ANIMAFLOW_STATE_DIR or .state>/benchmarks/<run id>/; the report is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEALTH = "http://127.0.0.21:8000/health"
BIN = Path(os.environ.get("ANIMAFLOW_VENV", ROOT / ".venv")) / "bin"
ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")


def healthy() -> bool:
    try:
        with urllib.request.urlopen(HEALTH, timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def levels(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from error
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be >= 1")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backends", default="llamacpp", help="comma-separated (default %(default)s)")
    parser.add_argument("--concurrency", type=levels, default=[1, 2, 4])
    parser.add_argument("--requests-per-level", type=int, default=8)
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--run-id", default="demo-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    options = parser.parse_args()

    if not healthy():
        print("the demo node does not answer: bringing it up with tests/infra/demo.sh", flush=True)
        subprocess.run(["bash", str(ROOT / "tests/infra/demo.sh")], cwd=ROOT, env=ENV, check=True)
    extra_vars = {
        "benchmark_backends": [name.strip() for name in options.backends.split(",") if name.strip()],
        "benchmark_run_id": options.run_id,
        "benchmark_concurrency": options.concurrency,
        "benchmark_requests_per_level": options.requests_per_level,
        "benchmark_input_tokens": options.input_tokens,
        "benchmark_output_tokens": options.output_tokens,
    }
    command = [str(BIN / "ansible-playbook"), "-i", "inventories/local/hosts.yml", "playbooks/benchmark.yml"]
    command += ["-e", json.dumps(extra_vars)]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
        print(f"playbooks/benchmark.yml failed (exit {done.returncode})", file=sys.stderr)
        return 1
    state = Path(os.environ.get("ANIMAFLOW_STATE_DIR") or ROOT / ".state")
    run_dir = state / "benchmarks" / options.run_id
    print((run_dir / "report.md").read_text(encoding="utf-8"))
    print(f"playbooks/benchmark.yml took {elapsed:.0f} s; results, report.md and charts in {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
