"""Reads what the playbooks leave under animaflow_controller_dir: facts/, status/ and benchmarks/."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from animaflow_control.schemas.benchmarks import BenchmarkResult, Level
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_schema import (
    SCHEMA_VERSION as SCHEMA,
)

log = logging.getLogger(__name__)

# Host and run names become file names: anything else would be a path, never a report.
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
            if (
                data is None
                or data.get("schema_version") != SCHEMA
                or not isinstance(data.get("levels"), list)
            ):
                skipped.append(str(path.relative_to(self.state_dir)))
                continue
            results.append(benchmark_result(path, data))
        results.sort(key=lambda result: result.finished_at or "", reverse=True)
        return results, skipped

    def host_benchmarks(self, host: str) -> list[dict[str, Any]]:
        """This host's raw results, oldest first, so that for each backend the newest comes last."""
        found = []
        for path in (self.state_dir / "benchmarks").glob(f"*/{host}-*.json") if SAFE_NAME.match(host) else ():
            data = read_json(path)
            if data is not None and data.get("schema_version") == SCHEMA:
                found.append(data)
        return sorted(found, key=lambda data: data.get("finished_at") or "")


def benchmark_result(path: Path, data: dict[str, Any]) -> BenchmarkResult:
    target = data.get("target") or {}
    # File names are <host>-<backend>.json; the backend is the part after the last dash.
    host, _, backend = path.stem.rpartition("-")
    return BenchmarkResult(
        run_id=path.parent.name,
        host=host or path.stem,
        backend=target.get("backend") or backend,
        version=target.get("version"),
        model=target.get("model"),
        finished_at=data.get("finished_at"),
        goodput_concurrency=(data.get("goodput") or {}).get("concurrency"),
        levels=[
            Level(
                concurrency=level["concurrency"],
                output_tokens_per_s=level.get("output_tokens_per_s"),
                ttft_p95_ms=(level.get("ttft_ms") or {}).get("p95"),
                failed=level.get("failed"),
            )
            for level in data["levels"]
        ],
    )
