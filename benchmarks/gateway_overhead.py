#!/usr/bin/env python3
"""What the studio gateway costs: the benchmark client (animaflow-bench) against llama-server directly and
through the LiteLLM proxy in front of it, in one run, interleaved (direct, gateway, direct, ...) because
this machine's speed moves within a minute.

The proxy runs as the gateway role runs it: the role's lock installed offline from the test mirror's
wheelhouse into .cache/gateway-bench/venv (made once), the role's key check (custom_auth) and a keys file,
LITELLM_LOCAL_MODEL_COST_MAP. llama-server is the newest release built by the tests
(.cache/controller/llamacpp/builds) serving SmolLM2-135M Q4_1 from the mirror with 16 slots.

Prints per round and concurrency (1 and 16): p50 TTFT and output tokens/s, direct and through the
gateway; then the medians of the gateway's overhead on p50 TTFT at concurrency 1 (goal < 10 ms) and its
throughput ratio at concurrency 16 (goal >= 0.95), with the machine's load.

On a farm the gateway has its own host. Here all three share two cores, so the proxy's CPU is taken from
llama-server's: --pin puts llama-server on core 0 (one thread) and the proxy and the client on core 1,
which is closer to a gateway host of its own (the direct runs keep the same placement); --proxy-alone
moves the client to core 0 beside llama-server, so the proxy has a core to itself, as on its own host.

Run: .venv/bin/python benchmarks/gateway_overhead.py [--rounds 3] [--requests 32] [--pin | --proxy-alone]
(needs make test's or the demo's llama.cpp build and tests/infra/prepare-mirror.py's mirror).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
LOCKS = ROOT / "roles" / "gateway" / "files" / "locks"
SERVER, GATEWAY = ("127.0.0.111", 8111), ("127.0.0.112", 4112)
NODE_KEY, STUDIO_KEY = "bench-node-key-0123", "bench-studio-key-0123456789"
MODEL = "smollm2"


def newest(pattern: str, where: Path) -> Path:
    found = sorted(where.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        sys.exit(
            f"nothing matches {where}/{pattern}: run make test (or make demo) and tests/infra/prepare-mirror.py first"
        )
    return found[-1]


def proxy_venv() -> Path:
    lock = newest("litellm-*.txt", LOCKS)
    version = lock.stem.removeprefix("litellm-")
    # One venv per lock's content: a lock that gains a package (prometheus-client) gets a new one.
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:12]
    venv = CACHE / "gateway-bench" / f"venv-{version}-{digest}"
    if not (venv / "bin" / "litellm").exists():
        wheelhouse = CACHE / "mirror" / "litellm" / version / "pypi"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q", "--require-hashes", "--no-deps", "-r", str(lock)]
        offline = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse.is_dir() else []
        subprocess.run(pip + offline, check=True)
    return venv


def wait_ready(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"{url} did not answer 200 within {seconds} s")


def bench(base_url: str, key: str, concurrency: int, requests: int, out: Path, pin: list[str]) -> dict:
    cmd = [
        *pin,
        str(ROOT / ".venv" / "bin" / "animaflow-bench"),
        "--base-url", base_url, "--model", MODEL, "--api-key", key,
        "--concurrency", str(concurrency), "--requests-per-level", str(requests),
        "--input-tokens", "64", "--output-tokens", "64", "--warmup-requests", "2",
        "--memory-bandwidth-gbps", "1", "--output", str(out),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    level = json.loads(out.read_text())["levels"][0]
    return {"ttft_p50": level["ttft_ms"]["median"], "tok_s": level["output_tokens_per_s"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument(
        "--pin", action="store_true", help="llama-server on core 0, the proxy and the client on core 1"
    )
    parser.add_argument(
        "--proxy-alone",
        action="store_true",
        help="as --pin, but the client on core 0: the proxy alone on core 1",
    )
    args = parser.parse_args()
    args.pin = args.pin or args.proxy_alone
    server_pin, gateway_pin = (["taskset", "-c", "0"], ["taskset", "-c", "1"]) if args.pin else ([], [])
    client_pin = server_pin if args.proxy_alone else gateway_pin
    threads = "1" if args.pin else "2"
    server_bin = newest("*-cpu-*/llama-server", CACHE / "controller" / "llamacpp" / "builds")
    model = CACHE / "mirror" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    venv = proxy_venv()
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    (work / "keys.json").write_text(json.dumps({"studio": hashlib.sha256(STUDIO_KEY.encode()).hexdigest()}))
    (work / "animaflow_gateway_auth.py").write_text(
        (ROOT / "roles/gateway/files/animaflow_gateway_auth.py").read_text()
    )
    (work / "config.yaml").write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {
                            "model": f"openai/{MODEL}",
                            "api_base": f"http://{SERVER[0]}:{SERVER[1]}/v1",
                            "api_key": "os.environ/ANIMAFLOW_NODE_BENCH_KEY",
                        },
                    }
                ],
                # The role's defaults (roles/gateway/vars/main.yml), metrics included.
                "router_settings": {
                    "num_retries": 2,
                    "allowed_fails": 1,
                    "cooldown_time": 30,
                    "retry_after": 0,
                    "enable_weighted_failover": True,
                },
                "litellm_settings": {
                    "telemetry": False,
                    "callbacks": ["prometheus"],
                    "require_auth_for_metrics_endpoint": False,
                },
                "general_settings": {
                    "master_key": "os.environ/LITELLM_MASTER_KEY",
                    "custom_auth": "animaflow_gateway_auth.user_api_key_auth",
                    "disable_spend_logs": True,
                },
            }
        )
    )
    env = dict(
        os.environ,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_MASTER_KEY=STUDIO_KEY,
        ANIMAFLOW_GATEWAY_KEYS=str(work / "keys.json"),
        ANIMAFLOW_NODE_BENCH_KEY=NODE_KEY,
        DISABLE_ADMIN_UI="True",
    )
    server = subprocess.Popen(
        [*server_pin, str(server_bin), "-m", str(model), "--alias", MODEL, "--host", SERVER[0], "--port", str(SERVER[1]),
         "--api-key", NODE_KEY, "-c", "16384", "-np", "16", "-t", threads],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    proxy = subprocess.Popen(
        [*gateway_pin, str(venv / "bin" / "litellm"), "--config", str(work / "config.yaml"), "--host", GATEWAY[0], "--port", str(GATEWAY[1])],
        cwd=work, env=env, stdout=(work / "proxy.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_ready(f"http://{SERVER[0]}:{SERVER[1]}/health")
        wait_ready(f"http://{GATEWAY[0]}:{GATEWAY[1]}/health/liveliness")
        targets = {
            "direct": (f"http://{SERVER[0]}:{SERVER[1]}", NODE_KEY),
            "gateway": (f"http://{GATEWAY[0]}:{GATEWAY[1]}", STUDIO_KEY),
        }
        placement = (
            "llama-server and client core 0, proxy alone on core 1"
            if args.proxy_alone
            else "llama-server core 0 (1 thread), proxy and client core 1"
            if args.pin
            else "all on both cores"
        )
        print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores, {placement}")
        print(f"server: {server_bin.parent.name}, {model.name}")
        overhead, ratio = [], []
        for round_ in range(1, args.rounds + 1):
            for concurrency in (1, 16):
                got = {
                    name: bench(
                        url,
                        key,
                        concurrency,
                        args.requests,
                        work / f"{name}-{round_}-{concurrency}.json",
                        client_pin,
                    )
                    for name, (url, key) in targets.items()
                }
                d, g = got["direct"], got["gateway"]
                print(
                    f"round {round_} c={concurrency:2}: p50 TTFT direct {d['ttft_p50']:7.1f} ms, gateway {g['ttft_p50']:7.1f} ms"
                    f" | output direct {d['tok_s']:7.1f} tok/s, gateway {g['tok_s']:7.1f} tok/s"
                )
                if concurrency == 1:
                    overhead.append(g["ttft_p50"] - d["ttft_p50"])
                else:
                    ratio.append(g["tok_s"] / d["tok_s"])
        print(
            f"gateway overhead on p50 TTFT at c=1 (median of {args.rounds}): {statistics.median(overhead):+.1f} ms (goal < 10 ms)"
        )
        print(
            f"gateway/direct output tokens/s at c=16 (median of {args.rounds}): {statistics.median(ratio):.3f} (goal >= 0.95)"
        )
        print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")
    finally:
        for proc in (proxy, server):
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
