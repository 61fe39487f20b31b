# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Tune llama-server on a node: an interleaved sweep of its settings around the derived ones.

Each candidate is the derived settings with one setting changed (threads, batch/micro-batch, slots,
context per slot, load mode (mmap, mlock), CPU build baseline), run as a transient llama-server on a
spare port of the node's serving address, and measured with the project's benchmark client (llm_bench)
for single-stream decode (concurrency 1) and output throughput at a higher concurrency (4). This
machine class changes speed by 2x within a minute, so a candidate is only ever compared with the
derived settings measured seconds before and after it: the derived server runs for the whole sweep,
and each candidate, started beside it, is measured in blocks derived, candidate, candidate, derived
(ABBA, which cancels a steady drift; BAAB in the next round) for each figure. A block's ratio is the
candidate's sum over derived's; a candidate's score is the median over rounds, each round visiting the
candidates in another order.

Used by the llamacpp_tune module (on the node) and benchmarks/llamacpp_tune.py. Standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

TUNE_KIND = "llamacpp_tune"
TUNE_SCHEMA_VERSION = 1
METRICS = ("decode", "throughput")
# Settings the sweep varies, and the role variable each one becomes in the host_vars suggestion.
ROLE_VARIABLES = {
    "threads": "llamacpp_threads",
    "batch": "llamacpp_batch_size",
    "ubatch": "llamacpp_ubatch_size",
    "parallel": "llamacpp_parallel",
    "ctx_per_slot": "llamacpp_ctx_per_slot",
    "load_mode": "llamacpp_load_mode",
    "build": "llamacpp_cpu_baseline",
}
AXES = ("threads", "batch", "parallel", "ctx", "load_mode", "build")
# llama-server's own defaults, where the environment sets nothing.
SERVER_DEFAULTS = {"batch": 2048, "ubatch": 512, "load_mode": "mmap"}
LOAD_MODES = ("mmap", "none", "mmap+mlock", "mlock")
BATCH_PAIRS = ((512, 512), (2048, 512), (256, 128))
# The settings this module writes into a candidate's environment (the rest is the node's own file).
_TUNED_ENV = (
    "LLAMA_ARG_HOST", "LLAMA_ARG_PORT", "LLAMA_ARG_THREADS", "LLAMA_ARG_N_PARALLEL", "LLAMA_ARG_CTX_SIZE",
    "LLAMA_ARG_BATCH", "LLAMA_ARG_UBATCH", "LLAMA_ARG_LOAD_MODE", "LLAMA_ARG_MMAP", "LLAMA_ARG_NO_MMAP",
    "LLAMA_ARG_MLOCK",
)  # fmt: skip
SECRET_SUFFIXES = ("KEY", "TOKEN", "PASSWORD", "SECRET")
METRIC_DEFINITIONS = {
    "decode": "single-stream decode tokens/s: the benchmark client's decode_tokens_per_s_median at "
    "concurrency 1 (median over requests of 1000 / TPOT, TPOT = (E2EL - TTFT) / (output_tokens - 1))",
    "throughput": "output tokens/s at the throughput concurrency: total output tokens of the level / its "
    "wall duration (usage.completion_tokens)",
    "ratio": "per block (derived, candidate, candidate, derived, for each figure, both servers running): the "
    "candidate's two values over derived's two; score = median over rounds; derived = 1 by definition",
    "combined": "sqrt(decode score x throughput score): how the winner is chosen",
    "derived_vs_best": "1 / the best score of the metric (derived / best, <= 1): from phase 2 where it ran "
    "(phase 1 screens every candidate; those above 1 + margin on either figure are measured again on "
    "fresh data, since the best of many noisy scores reads high), else from phase 1",
    "order": "one block per candidate per round; the candidates' order rotates and reverses from round to "
    "round, and every other round a block runs candidate, derived, derived, candidate; a candidate whose "
    "blocks all failed or whose combined score is below prune_below after a round runs no further rounds",
}


class TuneError(Exception):
    """The sweep cannot go on (the derived settings do not start or serve nothing)."""


@dataclass(frozen=True)
class Candidate:
    label: str
    settings: dict[str, Any]
    axis: str | None = None  # the setting changed; None for derived; "combined" for several


# --- settings <-> llama-server's environment -------------------------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    """The role's environment files: KEY="value" lines (backslash and quote escaped), # comments."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value, out, escaped = value[1:-1], [], False
            for char in value:
                if escaped or char != "\\":
                    out.append(char)
                    escaped = False
                else:
                    escaped = True
            value = "".join(out)
        values[key.strip()] = value
    return values


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "on", "enabled", "yes")


def load_mode_from_env(env: dict[str, str]) -> str:
    """LLAMA_ARG_LOAD_MODE (newer builds) or LLAMA_ARG_MMAP/NO_MMAP/MLOCK (older ones)."""
    mode = env.get("LLAMA_ARG_LOAD_MODE", "").strip()
    if mode in LOAD_MODES:
        return mode
    mmap = _flag(env.get("LLAMA_ARG_MMAP"))
    if mmap is None and "LLAMA_ARG_NO_MMAP" in env:
        mmap = not _flag(env["LLAMA_ARG_NO_MMAP"])
    mlock = bool(_flag(env.get("LLAMA_ARG_MLOCK")))
    mmap = True if mmap is None else mmap
    return {
        (True, False): "mmap",
        (False, False): "none",
        (True, True): "mmap+mlock",
        (False, True): "mlock",
    }[(mmap, mlock)]


def settings_from_env(env: dict[str, str], build: str, vcpus: int) -> dict[str, Any]:
    """The settings a node's environment file gives llama-server (its defaults where it says nothing)."""
    parallel = max(1, int(env.get("LLAMA_ARG_N_PARALLEL") or 1))
    ctx = int(env.get("LLAMA_ARG_CTX_SIZE") or 0)
    return {
        "threads": int(env.get("LLAMA_ARG_THREADS") or vcpus),
        "batch": int(env.get("LLAMA_ARG_BATCH") or SERVER_DEFAULTS["batch"]),
        "ubatch": int(env.get("LLAMA_ARG_UBATCH") or SERVER_DEFAULTS["ubatch"]),
        "parallel": parallel,
        "ctx_per_slot": ctx // parallel if ctx else 0,
        "load_mode": load_mode_from_env(env),
        "build": build,
    }


def load_mode_env(mode: str) -> dict[str, str]:
    """Both spellings: builds since --load-mode read LLAMA_ARG_LOAD_MODE, older ones LLAMA_ARG_MMAP and
    LLAMA_ARG_MLOCK; each build ignores the other's names (checked on b9976 and b11312)."""
    mmap = mode in ("mmap", "mmap+mlock")
    mlock = mode in ("mlock", "mmap+mlock")
    return {
        "LLAMA_ARG_LOAD_MODE": mode,
        "LLAMA_ARG_MMAP": "1" if mmap else "0",
        "LLAMA_ARG_MLOCK": "1" if mlock else "0",
    }


def server_env(base: dict[str, str], settings: dict[str, Any], host: str, port: int) -> dict[str, str]:
    env = {key: value for key, value in base.items() if key not in _TUNED_ENV}
    env.update(
        LLAMA_ARG_HOST=host,
        LLAMA_ARG_PORT=str(port),
        LLAMA_ARG_THREADS=str(settings["threads"]),
        LLAMA_ARG_N_PARALLEL=str(settings["parallel"]),
        LLAMA_ARG_BATCH=str(settings["batch"]),
        LLAMA_ARG_UBATCH=str(settings["ubatch"]),
    )
    if settings["ctx_per_slot"]:
        env["LLAMA_ARG_CTX_SIZE"] = str(settings["ctx_per_slot"] * settings["parallel"])
    env.update(load_mode_env(settings["load_mode"]))
    return env


# --- candidates ---------------------------------------------------------------------------------------


def thread_counts(vcpus: int, derived: int) -> list[int]:
    """Every count up to 8 vCPUs; above, powers of two, the halves and the whole, around derived."""
    if vcpus <= 8:
        return list(range(1, vcpus + 1))
    counts = {1, vcpus // 2, vcpus, derived, max(1, derived // 2), min(vcpus, derived + derived // 4)}
    counts |= {2**exponent for exponent in range(1, int(math.log2(vcpus)) + 1)}
    return sorted(count for count in counts if 1 <= count <= vcpus)


def _label(axis: str, settings: dict[str, Any]) -> str:
    if axis == "batch":
        return f"batch={settings['batch']}/{settings['ubatch']}"
    if axis == "ctx":
        return f"ctx_per_slot={settings['ctx_per_slot']}"
    if axis == "load_mode":
        return f"load_mode={settings['load_mode']}"
    return f"{axis}={settings[axis]}"


def generate_candidates(
    derived: dict[str, Any],
    vcpus: int,
    builds: Iterable[str] = (),
    axes: Iterable[str] = AXES,
    max_ctx_per_slot: int | None = None,
) -> list[Candidate]:
    """derived first, then one candidate per other value of each axis, duplicates dropped."""
    axes = list(axes)
    unknown = [axis for axis in axes if axis not in AXES]
    if unknown:
        raise ValueError(f"unknown axes {unknown}; known: {', '.join(AXES)}")
    out = [Candidate("derived", dict(derived))]
    seen = [derived]

    def add(axis: str, **change: Any) -> None:
        settings = {**derived, **change}
        if settings not in seen:
            seen.append(settings)
            out.append(Candidate(_label(axis, settings), settings, axis))

    for axis in axes:
        if axis == "threads":
            for count in thread_counts(vcpus, derived["threads"]):
                add(axis, threads=count)
        elif axis == "batch":
            for batch, ubatch in BATCH_PAIRS:
                add(axis, batch=batch, ubatch=ubatch)
        elif axis == "parallel":
            for slots in (1, 4):
                add(axis, parallel=slots)
        elif axis == "ctx" and derived["ctx_per_slot"]:
            for ctx in (derived["ctx_per_slot"] // 2, derived["ctx_per_slot"] * 2):
                if ctx >= 256 and (max_ctx_per_slot is None or ctx <= max_ctx_per_slot):
                    add(axis, ctx_per_slot=ctx)
        elif axis == "load_mode":
            for mode in ("none", "mmap+mlock"):
                add(axis, load_mode=mode if derived["load_mode"] != mode else "mmap")
        elif axis == "build":
            for build in builds:
                add(axis, build=build)
    return out


def combine(derived: dict[str, Any], winners: list[Candidate]) -> Candidate:
    """The derived settings with every given candidate's change applied."""
    settings = dict(derived)
    for winner in winners:
        settings.update({key: value for key, value in winner.settings.items() if value != derived[key]})
    return Candidate("combined: " + " + ".join(w.label for w in winners), settings, "combined")


def round_order(labels: list[str], number: int) -> list[str]:
    """The candidates (not derived) of round `number`: rotated by one each round, reversed every other."""
    others = [label for label in labels if label != "derived"]
    shift = number % len(others) if others else 0
    order = others[shift:] + others[:shift]
    return order[::-1] if number % 2 else order


# --- scoring ------------------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def summarise(candidates: list[Candidate], blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per candidate: median raw values, the per-round ratios to derived in the same block, scores."""
    rows = []
    for candidate in candidates:
        is_derived = candidate.label == "derived"
        own = blocks if is_derived else [block for block in blocks if block["label"] == candidate.label]
        failed = [block for block in own if block.get("error")] if not is_derived else []
        row: dict[str, Any] = {
            "label": candidate.label,
            "axis": candidate.axis,
            "settings": candidate.settings,
            "visits": len(own),
            "failed_visits": len(failed),
            "errors": sorted({block["error"] for block in failed}),
        }
        for metric in METRICS:
            key = f"derived_{metric}" if is_derived else metric
            values = [value for block in own for value in block.get(key) or [] if value is not None]
            row[f"median_{metric}"] = _median(values)
            if is_derived:
                ratios = [1.0] * len(own)
            else:
                ratios = [
                    block[f"ratio_{metric}"] for block in own if block.get(f"ratio_{metric}") is not None
                ]
            row[f"ratios_{metric}"] = [round(ratio, 4) for ratio in ratios]
            row[f"score_{metric}"] = _median(ratios) if ratios or not is_derived else 1.0
            # How consistent: the rounds in which the candidate beat derived.
            row[f"wins_{metric}"] = sum(1 for ratio in ratios if ratio > 1) if not is_derived else None
        scores = [row[f"score_{metric}"] for metric in METRICS]
        row["score_combined"] = (
            round(math.sqrt(scores[0] * scores[1]), 4) if all(score is not None for score in scores) else None
        )
        rows.append(row)
    return rows


def best(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    scored = [row for row in rows if row.get(key) is not None]
    return max(scored, key=lambda row: (row[key], row["label"] == "derived"))


def axis_winners(rows: list[dict[str, Any]], margin: float) -> list[dict[str, Any]]:
    """Per axis, the candidate with the best combined score, when it beats derived by more than margin."""
    winners = []
    for axis in dict.fromkeys(row["axis"] for row in rows if row["axis"] not in (None, "combined")):
        scored = [row for row in rows if row["axis"] == axis and row["score_combined"] is not None]
        top = best(scored, "score_combined") if scored else None
        if top is not None and top["score_combined"] > 1 + margin:
            winners.append(top)
    return winners


# --- transient llama-server processes ---------------------------------------------------------------


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the module's process ends, however it ends (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


@dataclass
class Server:
    name: str
    base_url: str
    log_path: str
    process: subprocess.Popen[bytes] | None = None
    unit: str | None = None


class ProcessLauncher:
    """Candidates as children of this process: their own session, killed when it ends (PDEATHSIG),
    stopped in close() whatever happened, as the service's user when started as root."""

    kind = "process"

    def __init__(self, log_dir: str, user: str | None = None, group: str | None = None) -> None:
        self.log_dir = log_dir
        self.user = user if os.geteuid() == 0 else None
        self.group = group if os.geteuid() == 0 else None
        self.running: list[Server] = []

    def start(
        self, name: str, binary: str, env: dict[str, str], secrets_file: str | None, base_url: str
    ) -> Server:
        log_path = os.path.join(self.log_dir, f"{name}.log")
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        if secrets_file:
            with open(secrets_file, encoding="utf-8") as handle:
                full_env.update(parse_env_file(handle.read()))
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [binary],
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # the module is single-threaded when it starts one
                user=self.user,
                group=self.group,
                extra_groups=[] if self.group else None,
                cwd="/",  # the log directory is root's; the service user may not enter it
            )
        server = Server(name, base_url, log_path, process=process)
        self.running.append(server)
        return server

    def alive(self, server: Server) -> bool:
        return server.process is not None and server.process.poll() is None

    def ready(self, server: Server, timeout_s: float) -> None:
        wait_healthy(self, server, timeout_s)

    def stop(self, server: Server) -> None:
        process = server.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if server in self.running:
            self.running.remove(server)

    def log_tail(self, server: Server, lines: int = 15) -> str:
        with (
            contextlib.suppress(OSError),
            open(server.log_path, encoding="utf-8", errors="replace") as handle,
        ):
            return "\n".join(handle.read().splitlines()[-lines:])
        return ""

    def close(self) -> None:
        for server in list(self.running):
            self.stop(server)
        shutil.rmtree(self.log_dir, ignore_errors=True)


# Lines of the production unit's [Service] section a transient candidate does not take over: how it
# starts and restarts (its own), and the settings file (its values are the candidate's, sent with
# --setenv; EnvironmentFile= would override them).
_UNIT_KEYS_NOT_COPIED = (
    "Type",
    "ExecStart",
    "Restart",
    "RestartSec",
    "EnvironmentFile",
    "StartLimitIntervalSec",
)
UNIT_PREFIX = "animaflow-llamacpp-tune"


def unit_properties(unit_text: str) -> list[str]:
    """The production unit's [Service] assignments (User, hardening, ...) as systemd-run properties."""
    properties, section = [], ""
    for raw in unit_text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key = line.partition("=")[0].strip()
        if section == "[Service]" and "=" in line and key not in _UNIT_KEYS_NOT_COPIED:
            properties.append(line)
    return properties


def systemd_run_command(
    unit: str, binary: str, env: dict[str, str], properties: list[str], secrets_file: str | None, mlock: bool
) -> list[str]:
    command = [
        "systemd-run",
        f"--unit={unit}",
        "--collect",
        "--quiet",
        "--description=AnimaFlow llama.cpp tuning candidate",
    ]
    command += [f"--property={item}" for item in ["Type=exec", *properties]]
    if secrets_file:
        command.append(f"--property=EnvironmentFile={secrets_file}")
    if mlock:  # mlock needs a memlock limit the size of the model; the unit's default is 8 MiB
        command.append("--property=LimitMEMLOCK=infinity")
    command += [f"--setenv={key}={value}" for key, value in sorted(env.items())]
    return [*command, binary]


class SystemdLauncher:
    """Candidates as transient units with the production unit's user and hardening (systemd-run),
    named animaflow-llamacpp-tune-N so a caller can stop any left behind by pattern."""

    kind = "systemd"

    def __init__(self, unit_text: str) -> None:
        self.properties = unit_properties(unit_text)
        self.running: list[Server] = []
        self.count = 0

    def start(
        self, name: str, binary: str, env: dict[str, str], secrets_file: str | None, base_url: str
    ) -> Server:
        self.count += 1
        unit = f"{UNIT_PREFIX}-{os.getpid()}-{self.count}.service"
        mlock = env.get("LLAMA_ARG_MLOCK") == "1"
        command = systemd_run_command(unit, binary, env, self.properties, secrets_file, mlock)
        server = Server(name, base_url, log_path="", unit=unit)
        self.running.append(server)
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise TuneError(f"systemd-run {unit} failed: {done.stderr.strip() or done.stdout.strip()}")
        return server

    def ready(self, server: Server, timeout_s: float) -> None:
        wait_healthy(self, server, timeout_s)

    def alive(self, server: Server) -> bool:
        state = subprocess.run(
            ["systemctl", "is-active", server.unit or ""], capture_output=True, text=True, check=False
        )
        return state.stdout.strip() in ("active", "activating", "reloading")

    def stop(self, server: Server) -> None:
        subprocess.run(["systemctl", "stop", server.unit or ""], capture_output=True, check=False, timeout=60)
        if server in self.running:
            self.running.remove(server)

    def log_tail(self, server: Server, lines: int = 15) -> str:
        done = subprocess.run(
            ["journalctl", "--no-pager", "-o", "cat", "-n", str(lines), "-u", server.unit or ""],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    def close(self) -> None:
        for server in list(self.running):
            self.stop(server)


def wait_healthy(launcher: Any, server: Server, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{server.base_url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if not launcher.alive(server):
            raise TuneError(f"exited before it was healthy: {launcher.log_tail(server)}")
        if time.monotonic() > deadline:
            raise TuneError(f"not healthy after {timeout_s:.0f} s: {launcher.log_tail(server)}")
        time.sleep(0.2)


# --- measuring ----------------------------------------------------------------------------------------


@dataclass
class TuneConfig:
    binaries: dict[str, str]  # build name -> llama-server; the derived settings' build must be there
    base_env: dict[str, str]
    derived: dict[str, Any]
    model: str
    host: str = "127.0.0.1"
    api_key: str | None = None
    secrets_file: str | None = None
    vcpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    axes: list[str] = field(default_factory=lambda: list(AXES))
    candidates: list[dict[str, Any]] | None = None  # explicit {label?, settings changes}: no generation
    max_ctx_per_slot: int | None = None
    rounds: int = 3
    requests: int = 4
    input_tokens: int = 64
    output_tokens: int = 64
    warmup_requests: int = 1
    throughput_concurrency: int = 4
    health_timeout_s: float = 120.0
    timeout_s: float = 120.0
    margin: float = 0.03
    confirm: bool = True
    confirm_rounds: int = 5
    prune_below: float = 0.4

    def validate(self) -> None:
        if self.derived.get("build") not in self.binaries:
            raise ValueError(f"no llama-server for the derived build {self.derived.get('build')!r}")
        if (
            self.rounds < 1
            or self.confirm_rounds < 1
            or self.requests < 1
            or self.output_tokens < 2
            or self.throughput_concurrency < 2
        ):
            raise ValueError(
                "rounds and requests must be >= 1, output_tokens and throughput_concurrency >= 2"
            )
        if not 0 <= self.margin < 1 or not 0 <= self.prune_below < 1:
            raise ValueError("margin and prune_below must be between 0 and 1")

    def build_candidates(self) -> list[Candidate]:
        if self.candidates is None:
            return generate_candidates(
                self.derived, self.vcpus, [b for b in self.binaries if b != self.derived["build"]], self.axes,
                self.max_ctx_per_slot,
            )  # fmt: skip
        out = [Candidate("derived", dict(self.derived))]
        for item in self.candidates:
            changes = {key: value for key, value in item.items() if key != "label"}
            unknown = [key for key in changes if key not in self.derived]
            if unknown:
                raise ValueError(f"candidate {item} sets unknown settings {unknown}")
            settings = {**self.derived, **changes}
            axis = next(iter(changes), None) if len(changes) == 1 else "combined"
            label = (
                item.get("label")
                or ", ".join(f"{key}={value}" for key, value in changes.items())
                or "derived*"
            )
            out.append(Candidate(str(label), settings, axis))
        return out


# measure(base_url, metric, slots=1) -> {"value": tokens/s or None, "failed_requests": n, "error": text or
# None}; metric is "decode", "throughput" or "warmup" (value ignored; `slots` requests at once, so every
# slot's KV cache is touched before a figure is taken: a fresh server's first use of a slot pays page faults
# that the long-running derived server no longer pays).
Measure = Callable[..., dict[str, Any]]


def bench_measure(config: TuneConfig) -> Measure:
    """The project's benchmark client (llm_bench): decode at concurrency 1, output throughput at
    throughput_concurrency (requests rounded up to whole batches of it), warm-up on every slot at once."""
    from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench import (
        BenchConfig,
        run_benchmark,
    )

    names = {item.name for item in dataclasses.fields(BenchConfig)}
    concurrency = config.throughput_concurrency

    def measure(base_url: str, metric: str, slots: int = 1) -> dict[str, Any]:
        level, requests = 1, config.requests
        if metric == "throughput":
            level, requests = concurrency, -(-config.requests // concurrency) * concurrency
        elif metric == "warmup":
            level = max(1, slots)
            requests = level * max(1, config.warmup_requests)
        options: dict[str, Any] = {
            "base_url": base_url,
            "model": config.model,
            "api_key": config.api_key,
            "concurrency": [level],
            "requests_per_level": requests,
            "input_tokens": config.input_tokens,
            "output_tokens": config.output_tokens,
            "warmup_requests": 0,
            "timeout_s": config.timeout_s,
            "ignore_eos": True,
            "memory_bandwidth_gbps": 1.0,  # any figure: skips the host's bandwidth measurement, unused here
        }
        results = asyncio.run(run_benchmark(BenchConfig(**{k: v for k, v in options.items() if k in names})))
        result = results["levels"][0]
        failed = result["failed"]
        if metric == "throughput":
            value = result.get("output_tokens_per_s")
        else:
            value = result.get("decode_tokens_per_s_median")
            server_tpot = (result.get("server_tpot_ms") or {}).get("median")
            if value is None and server_tpot:
                # A model so fast that its tokens reach the client together (TPOT 0): the server's own timing.
                value = round(1000.0 / server_tpot, 3)
        return {
            "value": None if failed else value,
            "failed_requests": failed,
            "error": f"{failed} of {requests} requests failed: {result['errors']}" if failed else None,
        }

    return measure


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _load() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


class DerivedFailed(TuneError):
    """The derived server stopped serving: nothing can be compared any more."""


def _memory_available() -> int | None:
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


class Sweep:
    def __init__(
        self, config: TuneConfig, launcher: Any, measure: Measure, log: Callable[[str], None]
    ) -> None:
        self.config = config
        self.launcher = launcher
        self.measure = measure
        self.log = log
        self.blocks: list[dict[str, Any]] = []
        self.count = 0

    def start(self, candidate: Candidate) -> tuple[Server, str]:
        settings = candidate.settings
        binary = self.config.binaries.get(settings["build"])
        if binary is None:
            raise TuneError(f"no llama-server for build {settings['build']!r}")
        self.check_memory(candidate)
        port = free_port(self.config.host)
        base_url = f"http://{url_host(self.config.host)}:{port}"
        env = server_env(self.config.base_env, settings, self.config.host, port)
        self.count += 1
        server = self.launcher.start(
            f"candidate-{self.count}", binary, env, self.config.secrets_file, base_url
        )
        try:
            self.launcher.ready(server, self.config.health_timeout_s)
            self.measure(base_url, "warmup", slots=candidate.settings["parallel"])
        except BaseException:
            self.launcher.stop(server)
            raise
        return server, base_url

    def check_memory(self, candidate: Candidate) -> None:
        """A candidate runs beside derived: one that reads the model into its own memory (load mode none or
        mlock) needs the model's size again; any other shares the page cache. 512 MiB for its KV cache."""
        if candidate.label == "derived":
            return
        model = self.config.base_env.get("LLAMA_ARG_MODEL", "")
        size = os.path.getsize(model) if model and os.path.isfile(model) else 0
        needed = (size if candidate.settings["load_mode"] in ("none", "mlock") else 0) + (512 << 20)
        available = _memory_available()
        if available is not None and available < needed:
            raise TuneError(
                f"would not fit beside the derived server: needs about {needed >> 20} MiB, "
                f"{available >> 20} MiB available"
            )

    def value(self, base_url: str, metric: str, derived: bool) -> float | None:
        outcome = self.measure(base_url, metric)
        if outcome.get("error") or not outcome.get("value"):
            if derived:
                raise DerivedFailed(f"the derived settings stopped serving: {outcome.get('error')}")
            raise TuneError(str(outcome.get("error") or f"no {metric} figure"))
        return float(outcome["value"])

    def block(self, phase: int, number: int, candidate: Candidate, derived_url: str) -> dict[str, Any]:
        """derived, candidate, candidate, derived for each figure (reversed on odd rounds)."""
        record: dict[str, Any] = {
            "phase": phase,
            "round": number,
            "label": candidate.label,
            "load_before": _load(),
        }
        server = None
        try:
            server, url = self.start(candidate)
            for metric in METRICS:
                order = (False, True, True, False) if number % 2 == 0 else (True, False, False, True)
                values: dict[bool, list[float | None]] = {False: [], True: []}
                for is_candidate in order:
                    target = url if is_candidate else derived_url
                    values[is_candidate].append(self.value(target, metric, derived=not is_candidate))
                record[f"derived_{metric}"] = values[False]
                record[metric] = values[True]
                record[f"ratio_{metric}"] = round(sum(values[True]) / sum(values[False]), 4)
        except DerivedFailed:
            raise
        except (TuneError, OSError) as error:
            record["error"] = f"{candidate.label}: {error}"
        finally:
            if server is not None:
                self.launcher.stop(server)
        record["load_after"] = _load()
        self.log(
            f"phase {phase} round {number} {candidate.label}: "
            + (
                f"error {record['error']}"
                if record.get("error")
                else ", ".join(
                    f"{metric} x{record[f'ratio_{metric}']:.3f} ({_pair_text(record[metric])} vs derived "
                    f"{_pair_text(record[f'derived_{metric}'])} tok/s)"
                    for metric in METRICS
                )
            )
            + f", load {record['load_after']}"
        )
        return record

    def derived_only(self, phase: int, number: int, derived_url: str) -> dict[str, Any]:
        """With no candidate left, derived is still measured so its figures exist."""
        record: dict[str, Any] = {"phase": phase, "round": number, "label": "derived", "load_before": _load()}
        for metric in METRICS:
            record[f"derived_{metric}"] = [self.value(derived_url, metric, derived=True)]
        record["load_after"] = _load()
        return record

    def run(self, phase: int, candidates: list[Candidate], rounds: int) -> list[dict[str, Any]]:
        """The derived server for the whole phase, and every round a block per candidate still in; after
        a round a candidate whose blocks all failed, or that scores below prune_below of derived, is
        dropped (one block of a candidate at a third of derived's speed can take minutes on a busy node)."""
        by_label = {candidate.label: candidate for candidate in candidates}
        active, dropped = list(by_label), {}
        blocks: list[dict[str, Any]] = []
        try:
            derived_server, derived_url = self.start(by_label["derived"])
        except (TuneError, OSError) as error:
            raise TuneError(f"the derived settings did not start: {error}") from error
        try:
            for number in range(rounds):
                order = round_order(active, number)
                if not order:  # every candidate dropped, or none to start with
                    if not blocks:
                        blocks.append(self.derived_only(phase, number, derived_url))
                    break
                blocks += [self.block(phase, number, by_label[label], derived_url) for label in order]
                for row in summarise(candidates, blocks):
                    failed = row["visits"] and row["failed_visits"] == row["visits"]
                    slow = (
                        row["score_combined"] is not None and row["score_combined"] < self.config.prune_below
                    )
                    if row["label"] in active and row["label"] != "derived" and (failed or slow):
                        active.remove(row["label"])
                        dropped[row["label"]] = number
                        self.log(f"phase {phase}: {row['label']} dropped after round {number}")
        finally:
            self.launcher.stop(derived_server)
        self.blocks += blocks
        rows = summarise(candidates, blocks)
        for row in rows:
            row["dropped_after_round"] = dropped.get(row["label"])
        return rows


def _pair_text(values: list[float | None]) -> str:
    return "/".join("-" if value is None else f"{value:.1f}" for value in values)


def contenders(rows: list[dict[str, Any]], margin: float, limit: int = 4) -> list[dict[str, Any]]:
    """The screen's candidates that beat derived by more than margin on either figure, best first."""
    found = [
        row
        for row in rows
        if row["label"] != "derived"
        and row.get("dropped_after_round") is None
        and any((row[f"score_{metric}"] or 0) > 1 + margin for metric in METRICS)
    ]
    found.sort(key=lambda row: -max(row[f"score_{metric}"] or 0 for metric in METRICS))
    return found[:limit]


def tune(
    config: TuneConfig, launcher: Any, measure: Measure, log: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Phase 1 screens every candidate; phase 2 measures again, on fresh data, those that looked better
    than derived by more than the margin on either figure (and the combination of the settings that each
    won, when there are several). The figures come from phase 2 when it ran: the best of many noisy
    phase-1 scores reads high (the winner's curse), so it is only a screen."""
    config.validate()
    started_at, load_before = _now(), _load()
    candidates = config.build_candidates()
    by_label = {candidate.label: candidate for candidate in candidates}
    sweep = Sweep(config, launcher, measure, log)
    try:
        rows = sweep.run(1, candidates, config.rounds)
        phases = [rows]
        promoted = contenders(rows, config.margin)
        if config.confirm and promoted:
            chosen = [by_label[row["label"]] for row in promoted]
            winners = [by_label[row["label"]] for row in axis_winners(rows, config.margin)]
            if len(winners) >= 2:
                chosen.append(combine(config.derived, winners))
            phases.append(sweep.run(2, [by_label["derived"], *chosen], config.confirm_rounds))
    finally:
        launcher.close()
    final = phases[-1]
    top = best(final, "score_combined")
    winner = top if top["label"] != "derived" and top["score_combined"] > 1 + config.margin else final[0]
    # Candidates phase 2 did not measure again keep their screen scores (at most 1 + margin by then).
    measured_again = {row["label"] for row in final}
    pool = final + [row for row in rows if row["label"] not in measured_again]
    best_rows = {metric: best(pool, f"score_{metric}") for metric in METRICS}
    derived_vs_best = {metric: round(1 / best_rows[metric][f"score_{metric}"], 4) for metric in METRICS}
    return {
        "kind": TUNE_KIND,
        "tune_schema_version": TUNE_SCHEMA_VERSION,
        "target": {"model": config.model, "host": config.host, "binaries": config.binaries},
        "node": {
            "vcpus": config.vcpus,
            "load_before": load_before,
            "load_after": _load(),
            "launcher": launcher.kind,
        },
        "workload": {
            "rounds": config.rounds,
            "confirm_rounds": config.confirm_rounds if len(phases) > 1 else 0,
            "requests_per_level": config.requests,
            "input_tokens": config.input_tokens,
            "output_tokens": config.output_tokens,
            "warmup_requests": config.warmup_requests,
            "throughput_concurrency": config.throughput_concurrency,
            "margin": config.margin,
            "prune_below": config.prune_below,
        },
        "derived": config.derived,
        "phases": phases,
        "blocks": sweep.blocks,
        "best": {
            metric: {"label": row["label"], "settings": row["settings"], "score": row[f"score_{metric}"]}
            for metric, row in best_rows.items()
        },
        "derived_vs_best": derived_vs_best,
        "target_ratio": 0.95,
        "meets_target": all(ratio >= 0.95 for ratio in derived_vs_best.values()),
        "winner": {
            "label": winner["label"],
            "settings": winner["settings"],
            "score_decode": winner["score_decode"],
            "score_throughput": winner["score_throughput"],
            "score_combined": winner["score_combined"],
        },
        "suggestion": suggestion_vars(config.derived, winner["settings"]),
        "metric_definitions": METRIC_DEFINITIONS,
        "started_at": started_at,
        "finished_at": _now(),
    }


# --- the host_vars suggestion -------------------------------------------------------------------------


def suggestion_vars(derived: dict[str, Any], winner: dict[str, Any]) -> dict[str, Any]:
    """Role variables for the settings where the winner differs from derived (set) and where it does
    not (unchanged: the role's derivation already gives them, so they stay unset)."""
    changed, unchanged = {}, {}
    for setting, variable in ROLE_VARIABLES.items():
        if setting not in winner:
            continue
        target = changed if winner[setting] != derived.get(setting) else unchanged
        target[variable] = winner[setting]
    return {"set": changed, "unchanged": unchanged}


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _figure(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_suggestion(result: dict[str, Any], host: str, run_id: str) -> str:
    """The host_vars suggestion: the winner's settings that differ from derived, figures in comments."""
    suggestion, winner = result["suggestion"], result["winner"]
    ratios = result["derived_vs_best"]
    derived_row = result["phases"][0][0]
    lines = [
        f"# llama.cpp settings suggested for {host} by the benchmark run {run_id} (-e benchmark_tune=true),",
        f"# measured {result['started_at']} to {result['finished_at']} UTC, load average before/after "
        f"{result['node']['load_before']} / {result['node']['load_after']} on {result['node']['vcpus']} vCPUs.",
        "# A suggestion, not applied: copy the variables into the node's host_vars in the inventory, then run",
        "# playbooks/install.yml -e backend=llamacpp (configure restarts llama-server with them).",
        "#",
        f"# derived settings: {_settings_text(result['derived'])}",
        f"#   decode {_figure(derived_row['median_decode'])} tok/s (concurrency 1), throughput "
        f"{_figure(derived_row['median_throughput'])} tok/s (concurrency {result['workload']['throughput_concurrency']}), "
        "medians over rounds",
    ]
    for metric in METRICS:
        top = result["best"][metric]
        lines.append(
            f"# best {metric}: {top['label']} at {_figure(top['score'], 3)} x derived; "
            f"derived reaches {ratios[metric]:.1%} of it"
        )
    lines.append(
        f"# winner: {winner['label']} (decode {_figure(winner['score_decode'], 3)} x, throughput "
        f"{_figure(winner['score_throughput'], 3)} x derived; a change must gain more than "
        f"{result['workload']['margin']:.0%} on both combined)"
    )
    lines.append("# ratios: each candidate against the derived settings running beside it, measured derived,")
    lines.append("# candidate, candidate, derived seconds apart; median over rounds.")
    lines.append("---")
    if suggestion["set"]:
        lines += [f"{variable}: {_yaml_scalar(value)}" for variable, value in suggestion["set"].items()]
    else:
        lines.append("# No change: no candidate beat the derived settings by more than the margin.")
    if suggestion["unchanged"]:
        lines.append("# Already what the role derives (leave unset so they follow the node):")
        lines += [
            f"# {variable}: {_yaml_scalar(value)}" for variable, value in suggestion["unchanged"].items()
        ]
    return "\n".join(lines) + "\n"


def _wins_text(row: dict[str, Any], metric: str) -> str:
    wins = row.get(f"wins_{metric}")
    return "-" if wins is None else f"{wins}/{len(row[f'ratios_{metric}'])}"


def _visits_text(row: dict[str, Any]) -> str:
    text = f"{row['failed_visits']}/{row['visits']}"
    dropped = row.get("dropped_after_round")
    return text if dropped is None else f"{text}, dropped after round {dropped}"


def _settings_text(settings: dict[str, Any]) -> str:
    return (
        f"threads {settings['threads']}, batch {settings['batch']}/{settings['ubatch']}, "
        f"{settings['parallel']} slots x {settings['ctx_per_slot'] or 'model'} ctx, "
        f"load mode {settings['load_mode']}, build {settings['build']}"
    )


def render_table(result: dict[str, Any]) -> str:
    """Per candidate of every phase: medians, scores (ratio to derived), failures; then derived vs best."""
    header = (
        "phase",
        "candidate",
        "decode tok/s",
        "x derived",
        "won",
        "thru tok/s",
        "x derived",
        "won",
        "combined",
        "failed/blocks",
    )
    rows = [header]
    rows += _candidate_rows(result)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 1 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    ratios = result["derived_vs_best"]
    lines += [
        "",
        f"derived: {_settings_text(result['derived'])}",
        f"derived / best single-stream decode: {ratios['decode']:.1%} (best: {result['best']['decode']['label']})",
        f"derived / best c={result['workload']['throughput_concurrency']} throughput: {ratios['throughput']:.1%} "
        f"(best: {result['best']['throughput']['label']})",
        f"target >= 95 % on both: {'met' if result['meets_target'] else 'NOT met'}; winner: {result['winner']['label']}",
    ]
    errors = sorted({error for phase in result["phases"] for row in phase for error in row["errors"]})
    lines += [f"error: {error}" for error in errors]
    return "\n".join(lines)


def _candidate_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per candidate and phase, shared by the printed table and the report's."""
    return [
        (
            str(number),
            row["label"],
            _figure(row["median_decode"]),
            _figure(row["score_decode"], 3),
            _wins_text(row, "decode"),
            _figure(row["median_throughput"]),
            _figure(row["score_throughput"], 3),
            _wins_text(row, "throughput"),
            _figure(row["score_combined"], 3),
            _visits_text(row),
        )
        for number, phase in enumerate(result["phases"], 1)
        for row in phase
    ]


def tuning_markdown(result: dict[str, Any], suggestion_file: str | None = None) -> list[str]:
    """The report's lines for one node's sweep: derived vs best, the suggestion, every candidate."""
    ratios, workload = result["derived_vs_best"], result["workload"]
    suggestion = result["suggestion"]["set"]
    lines = [
        f"Derived: {_settings_text(result['derived'])}.",
        "",
        f"- Derived reaches **{ratios['decode']:.1%}** of the best single-stream decode "
        f"({result['best']['decode']['label']}) and **{ratios['throughput']:.1%}** of the best concurrency "
        f"{workload['throughput_concurrency']} throughput ({result['best']['throughput']['label']}): target 95 % "
        f"{'met' if result['meets_target'] else '**not met**'}.",
        f"- Winner: {result['winner']['label']}"
        + (f"; suggestion `{suggestion_file}`: " if suggestion_file else ": ")
        + (", ".join(f"`{name}: {value}`" for name, value in suggestion.items()) or "no change"),
        f"- {workload['rounds']} rounds of one block per candidate (derived, candidate, candidate, derived per figure); {workload['requests_per_level']} requests "
        f"per measurement, {workload['output_tokens']} output tokens; load average before/after "
        f"{result['node']['load_before']} / {result['node']['load_after']} on {result['node']['vcpus']} vCPUs, "
        f"{result['started_at']} to {result['finished_at']} (UTC).",
        "",
        "| Phase | Candidate | Decode tok/s | x derived | Won | Throughput tok/s | x derived | Won | Combined "
        "| Failed/blocks |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in _candidate_rows(result)]
    errors = sorted({error for phase in result["phases"] for row in phase for error in row["errors"]})
    lines += [""] + [f"- Error: {error}" for error in errors] if errors else []
    return lines


def tuning_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The few figures the dashboard shows per sweep."""
    derived_row = result["phases"][0][0]
    return {
        "derived": result["derived"],
        "derived_vs_best": result["derived_vs_best"],
        "meets_target": result["meets_target"],
        "best": {metric: result["best"][metric]["label"] for metric in METRICS},
        "winner": result["winner"]["label"],
        "suggestion": result["suggestion"]["set"],
        "derived_decode": derived_row["median_decode"],
        "derived_throughput": derived_row["median_throughput"],
        "throughput_concurrency": result["workload"]["throughput_concurrency"],
        "load": [result["node"]["load_before"], result["node"]["load_after"]],
        "finished_at": result["finished_at"],
    }


def temporary_log_dir() -> str:
    return tempfile.mkdtemp(prefix="animaflow-llamacpp-tune-")
