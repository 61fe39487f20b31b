#!/usr/bin/env python3
"""Time the llama.cpp lifecycle on the local farm node (inventories/local) and measure its unit's hardening.

    benchmarks/backend_lifecycle.py [--cold] [--json FILE]

1. first install on a fresh node (the container is recreated; --cold also empties the controller's
   build cache so the time includes compiling llama-server),
2. an idempotent re-run of the same install (target < 20 s, must report changed=0),
3. start to healthy with SmolLM2-135M: `systemctl start` until GET /health answers 200 (target < 5 s),
   and the start playbook as a whole,
4. `systemd-analyze security animaflow-llamacpp.service` exposure inside the node (target <= 2.0).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
NODE = "animaflow-local-node"
ADDRESS, PORT = "127.0.0.21", 8000
UNIT = "animaflow-llamacpp.service"
BIN = Path(os.environ.get("ANIMAFLOW_VENV", ROOT / ".venv")) / "bin"
ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, check=check)


def playbook(name: str) -> tuple[float, str]:
    start = time.monotonic()
    proc = run(
        str(BIN / "ansible-playbook"),
        "-i",
        "inventories/local/hosts.yml",
        f"playbooks/{name}.yml",
        "-e",
        "backend=llamacpp",
        check=False,
    )
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"playbooks/{name}.yml failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    recap = re.search(r"local-node\s*:\s*(ok=.*)", proc.stdout)
    return elapsed, recap.group(1).strip() if recap else "?"


def healthy() -> bool:
    try:
        return httpx.get(f"http://{ADDRESS}:{PORT}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cold", action="store_true", help="empty the controller's llama.cpp build cache first"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    run("bash", "tests/infra/demo.sh", "down")
    run("bash", "tests/infra/demo.sh", "node")
    run("bash", "tests/infra/prepare-mirror.sh")
    if args.cold:
        shutil.rmtree(ROOT / ".cache" / "controller" / "llamacpp" / "builds", ignore_errors=True)

    first, first_recap = playbook("install")
    rerun, rerun_recap = playbook("install")

    playbook("start")
    run("docker", "exec", NODE, "systemctl", "stop", UNIT)
    start = time.monotonic()
    run("docker", "exec", NODE, "systemctl", "start", UNIT)
    while not healthy():
        if time.monotonic() - start > 60:
            sys.exit("llama-server did not become healthy within 60 s")
        time.sleep(0.05)
    to_healthy = time.monotonic() - start
    run("docker", "exec", NODE, "systemctl", "stop", UNIT)
    start_playbook, _ = playbook("start")

    security = run("docker", "exec", NODE, "systemd-analyze", "security", UNIT, "--no-pager").stdout
    exposure = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", security).group(1))

    figures = {
        "first_install_s": round(first, 1),
        "first_install_recap": first_recap,
        "idempotent_rerun_s": round(rerun, 1),
        "idempotent_rerun_recap": rerun_recap,
        "start_to_healthy_s": round(to_healthy, 2),
        "start_playbook_s": round(start_playbook, 1),
        "systemd_security_exposure": exposure,
        "cold_build_cache": args.cold,
    }
    print(
        f"first install ({'cold build cache' if args.cold else 'build cache as found'}): {first:7.1f} s  [{first_recap}]"
    )
    print(f"idempotent re-run (target < 20 s):     {rerun:7.1f} s  [{rerun_recap}]")
    print(
        f"start to healthy, SmolLM2 (target < 5 s): {to_healthy:5.2f} s  (start playbook: {start_playbook:.1f} s)"
    )
    print(f"systemd-analyze security exposure (target <= 2.0): {exposure}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    ok = rerun < 20 and "changed=0" in rerun_recap and to_healthy < 5 and exposure <= 2.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
