"""Reads what the playbooks leave under animaflow_controller_dir: facts/, status/ and benchmarks/."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from animaflow_control.schemas.benchmarks import BenchmarkResult, DecodeBound, Level
from animaflow_control.schemas.tunings import Tuning
from ansible_collections.animaflow.inference.plugins.module_utils.llamacpp_tune import (
    TUNE_KIND,
    tuning_summary,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_schema import (
    current,
    readable,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_stats import (
    DECODE_BOUND_TOLERANCE,
)

log = logging.getLogger(__name__)

# Host and run names become file names: anything else would be a path, never a report.
# The benchmark playbook's llama.cpp sweep (-e benchmark_tune=true) beside the results.
TUNE_SUFFIX = "-llamacpp-tune.json"
SUGGESTION_SUFFIX = "-llamacpp-tuned.yml"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        log.warning("unreadable report %s: %s", path, error)
        return None
    return data if isinstance(data, dict) else None


class ControllerFiles:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def node_report(self, kind: str, host: str) -> dict[str, Any] | None:
        if not SAFE_NAME.match(host):
            return None
        return read_json(self.state_dir / kind / f"{host}.json")

    def benchmarks(self) -> tuple[list[BenchmarkResult], list[str]]:
        results: list[BenchmarkResult] = []
        skipped: list[str] = []
        for path in sorted((self.state_dir / "benchmarks").glob("*/*.json")):
            data = read_json(path)
            if data is not None and data.get("kind") == TUNE_KIND:
                continue  # a llama.cpp sweep: tunings() reads it
            if data is None or not readable(data) or not isinstance(data.get("levels"), list):
                skipped.append(str(path.relative_to(self.state_dir)))
                continue
            results.append(benchmark_result(path, current(data)))
        results.sort(key=lambda result: result.finished_at or "", reverse=True)
        return results, skipped

    def tunings(self) -> list[Tuning]:
        """The llama.cpp sweeps (<run>/<host>-llamacpp-tune.json), newest first, with their suggestion file."""
        found = []
        for path in (self.state_dir / "benchmarks").glob(f"*/*{TUNE_SUFFIX}"):
            data = read_json(path)
            if data is None or data.get("kind") != TUNE_KIND:
                continue
            host = path.name[: -len(TUNE_SUFFIX)]
            suggestion = path.with_name(host + SUGGESTION_SUFFIX)
            relative = str(suggestion.relative_to(self.state_dir)) if suggestion.is_file() else None
            try:
                found.append(
                    Tuning(
                        run_id=path.parent.name, host=host, suggestion_file=relative, **tuning_summary(data)
                    )
                )
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
                log.warning("unreadable sweep %s: %s", path, error)
        return sorted(found, key=lambda tuning: tuning.finished_at or "", reverse=True)

    def host_benchmarks(self, host: str) -> list[dict[str, Any]]:
        """This host's raw results, oldest first, so that for each backend the newest comes last.

        Matched exactly: node `gpu` never takes `gpu-a`'s results, whose files also start with `gpu-`.
        """
        found = []
        for path in (self.state_dir / "benchmarks").glob(f"*/{host}-*.json") if SAFE_NAME.match(host) else ():
            data = read_json(path)
            if data is not None and readable(data) and result_host(path, data) == host:
                found.append(current(data))
        return sorted(found, key=lambda data: data.get("finished_at") or "")


def result_host(path: Path, data: dict[str, Any]) -> str:
    """The node a results file belongs to: target.node (schema_version 2), else the file name less
    -<backend>[-<workload>].json, with the backend the results themselves name."""
    target = data.get("target") or {}
    if target.get("node"):
        return str(target["node"])
    backend = target.get("backend") or path.stem.rpartition("-")[2]
    workload = (data.get("workload") or {}).get("kind") or "chat"
    suffix = f"-{backend}" + ("" if workload == "chat" else f"-{workload}")
    return path.stem[: -len(suffix)] if path.stem.endswith(suffix) else path.stem.rpartition("-")[0]


def _decode_bound(data: dict[str, Any]) -> DecodeBound | None:
    bound = data.get("decode_bound")
    if not isinstance(bound, dict):
        return None
    host = data.get("host") if isinstance(data.get("host"), dict) else {}
    fraction, warning = bound.get("achieved_fraction"), bound.get("warning")
    if isinstance(fraction, (int, float)) and fraction > 1 + DECODE_BOUND_TOLERANCE:
        # Written before the benchmark refused such fractions: never shown as a percentage.
        fraction, warning = (
            None,
            warning or f"single stream at {fraction:.2f} x its bound: the bound is wrong",
        )
    try:
        return DecodeBound(
            memory_bandwidth_gbps=bound.get("memory_bandwidth_gbps", host.get("memory_bandwidth_gbps")),
            source=bound.get("source") or host.get("memory_bandwidth_source"),
            tokens_per_s_upper=bound.get("tokens_per_s_upper"),
            achieved_fraction=fraction,
            warning=warning,
        )
    except ValueError:  # a hand-edited file: the rest of the result still shows
        return None


def _level(level: dict[str, Any]) -> Level:
    structured = level.get("structured") or {}
    unique = ((level.get("prefix") or {}).get("unique") or {}).get("ttft_ms") or {}
    return Level(
        concurrency=level["concurrency"],
        output_tokens_per_s=level.get("output_tokens_per_s"),
        ttft_p95_ms=(level.get("ttft_ms") or {}).get("p95"),
        failed=level.get("failed"),
        goodput_request_per_s=level.get("goodput_request_per_s"),
        invalid_replies=structured.get("invalid"),
        ttft_p95_unique_prefix_ms=unique.get("p95"),
    )


def benchmark_result(path: Path, data: dict[str, Any]) -> BenchmarkResult:
    target = data.get("target") or {}
    return BenchmarkResult(
        run_id=path.parent.name,
        host=result_host(path, data) or path.stem,
        backend=target.get("backend") or path.stem.rpartition("-")[2],
        version=target.get("version"),
        model=target.get("model"),
        finished_at=data.get("finished_at"),
        workload=(data.get("workload") or {}).get("kind") or "chat",
        model_format=target.get("model_format"),
        quantisation=target.get("quantisation"),
        goodput_request_per_s=(data.get("goodput") or {}).get("request_per_s"),
        max_concurrency_within_slo=(data.get("max_concurrency_within_slo") or {}).get("concurrency"),
        decode_bound=_decode_bound(data),
        levels=[_level(level) for level in data["levels"]],
    )
