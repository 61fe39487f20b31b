"""The comparison report: Markdown rows per node, backend and level, charts, check mode, no matplotlib."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from module_runner import run_module as run_collection_module

from ansible_collections.animaflow.inference.plugins.module_utils import bench_report
from ansible_collections.animaflow.inference.plugins.module_utils.bench_report import (
    ReportError,
    build_report,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_schema import METRIC_DEFINITIONS
from ansible_collections.animaflow.inference.plugins.modules import benchmark_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def stats(median: float, p95: float) -> dict[str, Any]:
    return {"count": 4, "mean": median, "median": median, "p90": p95, "p95": p95, "p99": p95, "max": p95}


def results(backend: str, speed: float, server_tpot: bool = True) -> dict[str, Any]:
    """Results schema 1 trimmed to what the report reads; `speed` scales throughput."""
    levels = []
    for concurrency in (1, 2, 4):
        levels.append(
            {
                "concurrency": concurrency,
                "requests": 4,
                "completed": 4 if concurrency < 4 else 3,
                "failed": 0 if concurrency < 4 else 1,
                "output_tokens_per_s": speed * concurrency,
                "request_per_s": speed * concurrency / 16,
                "ttft_ms": stats(50.0 * concurrency, 80.0 * concurrency),
                "tpot_ms": stats(1000 / speed, 1200 / speed),
                "e2el_ms": stats(900.0, 1100.0),
                "server_tpot_ms": stats(1000 / speed, 1150 / speed)
                if server_tpot
                else stats(0, 0) | {"count": 0},
            }
        )
    return {
        "schema_version": 1,
        "target": {"backend": backend, "version": "v1", "model": "tiny", "base_url": "http://127.0.0.1:8000"},
        "workload": {
            "concurrency": [1, 2, 4],
            "requests_per_level": 4,
            "input_tokens": 32,
            "output_tokens": 16,
            "ignore_eos": True,
            "warmup_requests": 1,
            "load": "closed loop",
        },
        "levels": levels,
        "token_source": "usage",
        "goodput": {
            "concurrency": 2,
            "output_tokens_per_s": speed * 2,
            "slo_ttft_ms": 1000.0,
            "slo_tpot_ms": 100.0,
        },
        "decode_bound": {
            "memory_bandwidth_gbps": 20.0,
            "source": "measured_cpu_read",
            "method": "read-only: 2 thread(s) scanned with memchr",
            "tokens_per_s_upper": 500.0,
            "achieved_fraction": 0.1234,
            "warning": None,
        },
        "metric_definitions": METRIC_DEFINITIONS,
        "started_at": "2026-11-29T10:00:00+00:00",
        "finished_at": "2026-11-29T10:01:00+00:00",
    }


RECOMMENDATION = {
    "choice": "llamacpp",
    "reasons": [
        "No usable GPU and 8 concurrent users: llama.cpp's parallel slots, then Ollama.",
        "Choice: llamacpp",
    ],
    "ranking": [
        {"backend": "llamacpp", "eligible": True, "score": 90.0, "reasons": ["llama.cpp supports cpu."]},
        {
            "backend": "vllm",
            "eligible": False,
            "score": 0.0,
            "reasons": ["vLLM cannot run on cpu | needs cuda."],
        },
    ],
}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "benchmarks" / "r1"
    run.mkdir(parents=True)
    (run / "node-a-llamacpp.json").write_text(json.dumps(results("llamacpp", 40.0)))
    (run / "node-a-ollama.json").write_text(json.dumps(results("ollama", 30.0, server_tpot=False)))
    (run / "node-b-llamacpp.json").write_text(json.dumps(results("llamacpp", 20.0)))
    return run


NODES = [
    {
        "host": "node-a",
        "hardware": "node-a: CPU, 2 cores",
        "benchmarked": ["llamacpp", "ollama"],
        "skipped": [{"backend": "vllm", "reason": "vLLM cannot run on cpu; it needs one of cuda."}],
        "recommendation": RECOMMENDATION,
    },
    {"host": "node-b", "benchmarked": ["llamacpp"], "skipped": [], "recommendation": RECOMMENDATION},
]


def test_a_bound_below_the_measured_speed_is_called_wrong_never_a_percentage(tmp_path: Path) -> None:
    run = tmp_path / "benchmarks" / "r2"
    run.mkdir(parents=True)
    data = results("vllm", 175.0)
    data["decode_bound"] = {
        "memory_bandwidth_gbps": 18.0,
        "source": "measured_cpu_read",
        "tokens_per_s_upper": 3.66,
        "achieved_fraction": None,
        "warning": "the bound is wrong, not the server: one stream decoded 175 tokens/s, 47.81 x the bound",
    }
    (run / "node-g-vllm.json").write_text(json.dumps(data))
    nodes = [{"host": "node-g", "benchmarked": ["vllm"], "skipped": [], "recommendation": RECOMMENDATION}]
    markdown = build_report(run, "r2", nodes, [], write=False)["markdown"]
    assert "| 18.0 (measured_cpu_read) | 3.7 | bound wrong (below) |" in markdown
    assert "- node-g / vllm: the bound is wrong, not the server: one stream decoded 175 tokens/s" in markdown
    assert "4781" not in markdown and "%" not in markdown.split("## Goodput")[1].split("## Charts")[0]


def test_report_has_a_row_per_node_backend_and_level_and_the_recommendation(run_dir: Path) -> None:
    report = build_report(run_dir, "r1", NODES, ["node-c"], write=True)
    markdown = (run_dir / "report.md").read_text()
    assert report["changed"] is True and report["markdown"] == markdown
    assert markdown.startswith("# Benchmark r1\n")
    rows = [line for line in markdown.splitlines() if line.startswith("| node-")]
    level_rows = [row for row in rows if row.split(" | ")[2] == "v1"]
    assert [row.split(" | ")[:4] for row in level_rows] == [
        [f"| {host}", backend, "v1", str(c)]
        for host, backend in (("node-a", "llamacpp"), ("node-a", "ollama"), ("node-b", "llamacpp"))
        for c in (1, 2, 4)
    ]
    # node-a / llamacpp at concurrency 4: 3 ok, 1 failed, 160 tok/s, TTFT p95 320 ms, server TPOT 25 ms.
    assert (
        "| node-a | llamacpp | v1 | 4 | 3 | 1 | 160.0 | 10.00 | 200.0 | 320.0 | 25.0 | 30.0 | 1100.0 | 25.0 |"
        in rows
    )
    # Results of schema_version 1: no request goodput, their goodput was the concurrency within the SLOs.
    assert (
        "| node-a | ollama | chat | tiny | not measured | 2 | 60.0 | usage | 20.0 (measured_cpu_read) | 500.0 | 12.3% |"
        in rows
    )
    assert "- node-a / ollama bandwidth: read-only: 2 thread(s) scanned with memchr." in markdown
    assert "- Skipped vllm: vLLM cannot run on cpu; it needs one of cuda." in markdown
    assert markdown.count("**Recommended backend: llamacpp**") == 2
    assert "| vllm | no | 0.0 | vLLM cannot run on cpu \\| needs cuda. |" in markdown  # pipe escaped
    assert "- Node failed before it could report: node-c" in markdown
    assert "`tpot_ms`: (e2el_ms - ttft_ms) / (output_tokens - 1)" in markdown
    for chart in ("output_tokens_per_s.png", "ttft_p95_ms.png"):
        assert (run_dir / chart).read_bytes().startswith(PNG_MAGIC)
        assert f"]({chart})" in markdown
    assert report["charts_skipped"] is None and len(report["results_files"]) == 3


def test_the_same_results_change_nothing_the_second_time(run_dir: Path) -> None:
    build_report(run_dir, "r1", NODES, [], write=True)
    stamps = {path.name: path.stat().st_mtime_ns for path in run_dir.iterdir()}
    assert build_report(run_dir, "r1", NODES, [], write=True)["changed"] is False
    assert {path.name: path.stat().st_mtime_ns for path in run_dir.iterdir()} == stamps


def test_check_mode_writes_nothing_and_tolerates_missing_results(tmp_path: Path) -> None:
    run = tmp_path / "never-measured"
    report = build_report(run, "r2", NODES, [], write=False)
    assert report["changed"] is True and not run.exists()
    assert "No backend was benchmarked." in report["markdown"]


def test_without_matplotlib_the_markdown_says_charts_were_skipped(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes `import matplotlib...` raise ImportError.
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    report = build_report(run_dir, "r1", NODES, [], write=True)
    assert report["charts"] == [] and not list(run_dir.glob("*.png"))
    assert "Charts skipped: matplotlib is not installed on the controller" in report["markdown"]
    assert "| node-b | llamacpp | v1 | 1 |" in report["markdown"]


def test_results_of_another_schema_are_refused(run_dir: Path) -> None:
    (run_dir / "node-b-llamacpp.json").write_text(json.dumps({"schema_version": 3}))
    with pytest.raises(ReportError, match="schema_version 1 or 2"):
        build_report(run_dir, "r1", NODES, [], write=True)
    (run_dir / "node-b-llamacpp.json").unlink()
    with pytest.raises(ReportError, match="cannot read"):
        build_report(run_dir, "r1", NODES, [], write=True)


def test_a_level_that_completed_nothing_leaves_a_gap_not_an_error(run_dir: Path) -> None:
    data = results("llamacpp", 40.0)
    data["levels"][1]["ttft_ms"] = {key: None for key in data["levels"][1]["ttft_ms"]}
    (run_dir / "node-b-llamacpp.json").write_text(json.dumps(data))
    report = build_report(run_dir, "r1", NODES, [], write=True)
    assert len(report["charts"]) == len(bench_report.CHARTS)
    assert "| node-b | llamacpp | v1 | 2 | 4 | 0 | 80.0 | 5.00 | - | - |" in report["markdown"]


def run_module(tmp_path: Path, args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    done = run_collection_module("benchmark_report", tmp_path, {**args, "_ansible_check_mode": check_mode})
    return json.loads(done.stdout)


def test_documented_options_match_the_argument_spec() -> None:
    documented = yaml.safe_load(benchmark_report.DOCUMENTATION)["options"]
    assert set(documented) == set(benchmark_report.ARGUMENT_SPEC)
    for name, spec in benchmark_report.ARGUMENT_SPEC.items():
        assert documented[name].get("default") == spec.get("default"), name
        assert documented[name]["type"] == spec["type"], name
        assert documented[name].get("required", False) == spec.get("required", False), name


def test_module_writes_in_a_real_run_and_nothing_in_check_mode(tmp_path: Path, run_dir: Path) -> None:
    checked = run_module(tmp_path, {"run_dir": str(run_dir), "nodes": NODES}, check_mode=True)
    assert checked["changed"] is True and not (run_dir / "report.md").exists()
    done = run_module(tmp_path, {"run_dir": str(run_dir), "nodes": NODES})
    assert done["changed"] is True and done["report_path"] == str(run_dir / "report.md")
    assert (run_dir / "report.md").read_text().startswith("# Benchmark r1\n")  # run_id from the directory
    again = run_module(tmp_path, {"run_dir": str(run_dir), "nodes": NODES}, check_mode=True)
    assert again["changed"] is False


def test_module_fails_clearly(tmp_path: Path, run_dir: Path) -> None:
    assert "host name" in run_module(tmp_path, {"run_dir": str(run_dir), "nodes": [{"x": 1}]})["msg"]
    missing = run_module(
        tmp_path, {"run_dir": str(run_dir), "nodes": [{"host": "n", "benchmarked": ["vllm"]}]}
    )
    assert missing["failed"] is True and "n-vllm.json" in missing["msg"]


def test_ttfat_column_measured_input_and_client_warnings_when_the_results_have_them() -> None:
    plain = bench_report.render_markdown(
        "r", [bench_report.Entry("n1", "llamacpp", results("llamacpp", 20.0))], [], [], None, []
    )
    assert "TTFAT" not in plain and "prompt tokens per request" not in plain
    thinking = results("vllm", 40.0)
    for level in thinking["levels"]:
        level["requests_with_reasoning"], level["ttfat_ms"] = 4, stats(321.0, 400.0)
    thinking["workload"]["measured_input"] = {"prompt_tokens_mean": 164.0, "cached_prompt_tokens_mean": 24.0}
    thinking["client"] = {"warnings": ["concurrency 4: the client read chunks 3.1 ms after they arrived"]}
    text = bench_report.render_markdown("r", [bench_report.Entry("n2", "vllm", thinking)], [], [], None, [])
    assert "TTFAT p50 ms" in text and "| 321.0 |" in text
    assert "- n2 / vllm: 164.0 prompt tokens per request as the server counted them" in text
    assert "24.0 of them from its prefix cache" in text
    assert "- n2 / vllm client: concurrency 4: the client read chunks 3.1 ms after they arrived." in text


def test_workloads_each_get_their_file_rows_and_tables(tmp_path: Path) -> None:
    run = tmp_path / "benchmarks" / "r3"
    run.mkdir(parents=True)
    chat = results("llamacpp", 40.0) | {"schema_version": 2}
    chat["target"] |= {"node": "n1", "model_format": "gguf", "quantisation": "Q4_1"}
    chat["goodput"] = {"request_per_s": 2.5, "concurrency": 2, "slo_ttft_ms": 1000.0, "slo_tpot_ms": 100.0}
    chat["max_concurrency_within_slo"] = {"concurrency": 4, "output_tokens_per_s": 160.0}
    structured = json.loads(json.dumps(chat)) | {"workload": {**chat["workload"], "kind": "structured"}}
    for level in structured["levels"]:
        level["structured"] = {
            "checked": 4,
            "valid": 3,
            "invalid": 1,
            "invalid_examples": ["cut at max_tokens"],
        }
    shared = json.loads(json.dumps(chat)) | {"workload": {**chat["workload"], "kind": "shared_prefix"}}
    for level in shared["levels"]:
        level["cached_prompt_tokens"] = stats(1030.0, 1030.0)
        level["prefix"] = {
            "shared_prefix_tokens": 1024,
            "unique": {"ttft_ms": stats(400.0, 600.0), "cached_prompt_tokens": stats(20.0, 20.0)},
            "ttft_p50_ratio_unique_over_shared": 4.0,
        }
    for name, data in (("n1-llamacpp.json", chat), ("n1-llamacpp-structured.json", structured)):
        (run / name).write_text(json.dumps(data))
    (run / "n1-llamacpp-shared_prefix.json").write_text(json.dumps(shared))
    measured = [
        {
            "backend": "llamacpp",
            "workload": workload,
            "file": bench_report.results_file_name("n1", "llamacpp", workload),
        }
        for workload in ("chat", "structured", "shared_prefix")
    ]
    nodes = [
        {"host": "n1", "benchmarked": ["llamacpp"], "measured": measured, "recommendation": RECOMMENDATION}
    ]
    report = build_report(run, "r3", nodes, [], write=True)
    markdown = report["markdown"]
    assert [Path(path).name for path in report["results_files"]] == [
        "n1-llamacpp.json", "n1-llamacpp-structured.json", "n1-llamacpp-shared_prefix.json"
    ]  # fmt: skip
    assert "| n1 | llamacpp (structured) | v1 | 1 |" in markdown  # the levels table names the workload
    assert "| n1 | llamacpp | chat | tiny (GGUF Q4_1) | 2.50 (2) | 4 | 160.0 |" in markdown
    assert "| n1 | llamacpp | 2 | 3 of 4 | cut at max_tokens |" in markdown.split("## Structured output")[1]
    prefix = markdown.split("## Shared prefix: TTFT with and without it")[1]
    assert "| n1 | llamacpp | 1 | 1024 | 50.0 | 400.0 | 4.00 | 1030 | 20 |" in prefix
    assert len(report["charts"]) == len(bench_report.CHARTS)
