# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The comparison report of one benchmark run: a Markdown table, PNG charts, the recommendation.

Reads the llm_benchmark results files the benchmark playbook fetched into one run directory
(<host>-<backend>.json for the chat workload, <host>-<backend>-<workload>.json for the others, of a
version llm_bench_schema reads) and writes report.md and the charts beside them.
Used by the benchmark_report module on the controller. matplotlib is optional: without it the Markdown is
still written and says the charts were skipped.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_collections.animaflow.inference.plugins.module_utils.llamacpp_tune import (
    TUNE_KIND,
    tuning_markdown,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_schema import (
    READABLE_SCHEMA_VERSIONS,
    current,
    readable,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_stats import (
    DECODE_BOUND_TOLERANCE,
)
from ansible_collections.animaflow.inference.plugins.module_utils.model_formats import format_name

REPORT_FILE = "report.md"
# (file name, title, y-axis label, value of one level); one line per node and backend in each.
CHARTS: tuple[tuple[str, str, str, str], ...] = (
    ("output_tokens_per_s.png", "Output throughput", "output tokens/s", "output_tokens_per_s"),
    ("ttft_p95_ms.png", "Time to first token, p95", "p95 TTFT (ms)", "ttft_p95"),
)


@dataclass
class Entry:
    """One node's results for one backend and workload."""

    host: str
    backend: str
    results: dict[str, Any]
    workload: str = "chat"

    @property
    def label(self) -> str:
        return f"{self.host} / {self.backend}" + ("" if self.workload == "chat" else f" / {self.workload}")


class ReportError(Exception):
    """A results file is missing or is not results of a schema this report understands."""


def results_file_name(host: str, backend: str, workload: str = "chat") -> str:
    """<host>-<backend>.json for chat (the name before workloads existed), else <host>-<backend>-<workload>.json."""
    return f"{host}-{backend}{'' if workload == 'chat' else '-' + workload}.json"


def load_entries(run_dir: Path, nodes: list[dict[str, Any]], missing_ok: bool) -> list[Entry]:
    """The results of every benchmarked backend and workload of every node; missing_ok for check mode,
    where the playbook measured nothing and so fetched nothing."""
    entries = []
    for node in nodes:
        measured = node.get("measured")
        if measured is None:  # a report written before workloads: chat only
            measured = [{"backend": backend, "workload": "chat"} for backend in node.get("benchmarked") or []]
        for item in measured:
            workload = item.get("workload") or "chat"
            path = run_dir / (item.get("file") or results_file_name(node["host"], item["backend"], workload))
            if missing_ok and not path.exists():
                continue
            try:
                results = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise ReportError(f"cannot read the results {path}: {error}") from error
            if not readable(results):
                versions = " or ".join(str(version) for version in READABLE_SCHEMA_VERSIONS)
                raise ReportError(f"{path} is not llm_benchmark results of schema_version {versions}")
            entries.append(Entry(node["host"], item["backend"], current(results), workload))
    return entries


def load_tunings(run_dir: Path, nodes: list[dict[str, Any]], missing_ok: bool) -> list[dict[str, Any]]:
    """Each node's llama.cpp sweep (-e benchmark_tune=true): host with results, error or skipped."""
    tunings = []
    for node in nodes:
        tuning = node.get("tuning") or {}
        if not tuning:
            continue
        entry: dict[str, Any] = {"host": node["host"], **tuning}
        if tuning.get("results"):
            path = run_dir / tuning["results"]
            if missing_ok and not path.exists():
                continue
            try:
                entry["data"] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise ReportError(f"cannot read the sweep {path}: {error}") from error
            if not isinstance(entry["data"], dict) or entry["data"].get("kind") != TUNE_KIND:
                raise ReportError(f"{path} is not llamacpp_tune results")
        tunings.append(entry)
    return tunings


def _tuning_lines(tunings: list[dict[str, Any]]) -> list[str]:
    if not tunings:
        return []
    lines = ["", "## llama.cpp tuning", ""]
    for entry in tunings:
        lines += [f"### {entry['host']}", ""]
        if entry.get("data"):
            lines += tuning_markdown(entry["data"], entry.get("suggestion"))
        else:
            lines.append(f"- {entry.get('error') or entry.get('skipped') or 'no sweep'}")
        lines.append("")
    return lines


def level_value(level: dict[str, Any], key: str) -> float | None:
    if key == "ttft_p95":
        return (level.get("ttft_ms") or {}).get("p95")
    return level.get(key)


def _num(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cell(text: Any) -> str:
    # A pipe inside a reason would split the Markdown table's cell.
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _levels_table(entries: list[Entry]) -> list[str]:
    # The server's own TPOT only when some server sent timings (llama-server does).
    with_server = any(
        (level.get("server_tpot_ms") or {}).get("count")
        for entry in entries
        for level in entry.results.get("levels") or []
    )
    header = ["Node", "Backend", "Version", "Conc.", "OK", "Failed", "Output tok/s", "Req/s"]
    # Time to first answer token only when some model streamed reasoning first.
    with_reasoning = any(
        level.get("requests_with_reasoning")
        for entry in entries
        for level in entry.results.get("levels") or []
    )
    header += ["TTFT p50 ms", "TTFT p95 ms", "TPOT p50 ms", "TPOT p95 ms", "E2EL p95 ms"]
    header += ["TTFAT p50 ms"] if with_reasoning else []
    header += ["Server TPOT p50 ms"] if with_server else []
    rows = []
    for entry in entries:
        version = (entry.results.get("target") or {}).get("version") or "-"
        for level in entry.results.get("levels") or []:
            backend = entry.backend + ("" if entry.workload == "chat" else f" ({entry.workload})")
            row = [entry.host, backend, version, str(level["concurrency"]), str(level["completed"])]
            row += [
                str(level["failed"]),
                _num(level.get("output_tokens_per_s")),
                _num(level.get("request_per_s"), 2),
            ]
            row += [
                _num(level[metric][stat])
                for metric, stat in (
                    ("ttft_ms", "median"),
                    ("ttft_ms", "p95"),
                    ("tpot_ms", "median"),
                    ("tpot_ms", "p95"),
                    ("e2el_ms", "p95"),
                )
            ]
            if with_reasoning:
                row.append(_num((level.get("ttfat_ms") or {}).get("median")))
            if with_server:
                row.append(_num((level.get("server_tpot_ms") or {}).get("median")))
            rows.append(row)
    return _table(header, rows) + _client_notes(entries)


def _client_notes(entries: list[Entry]) -> list[str]:
    """The input the servers counted (and served from cache), and any warning about the client."""
    notes = []
    for entry in entries:
        measured = (entry.results.get("workload") or {}).get("measured_input") or {}
        if measured.get("prompt_tokens_mean") is not None:
            cached = measured.get("cached_prompt_tokens_mean")
            notes.append(
                f"- {entry.label}: {_num(measured['prompt_tokens_mean'])} prompt tokens per request as the server "
                "counted them (chat template included)"
                + ("" if cached is None else f", {_num(cached)} of them from its prefix cache")
                + "."
            )
        notes += [
            f"- {entry.label} client: {text}."
            for text in (entry.results.get("client") or {}).get("warnings") or []
        ]
    return ["", *notes] if notes else []


def _bandwidth_cell(results: dict[str, Any], bound: dict[str, Any]) -> str:
    gbps = bound.get("memory_bandwidth_gbps", (results.get("host") or {}).get("memory_bandwidth_gbps"))
    source = bound.get("source") or (results.get("host") or {}).get("memory_bandwidth_source")
    return "-" if gbps is None else f"{_num(gbps)} ({source or 'unknown'})"


def _served_cell(results: dict[str, Any]) -> str:
    """The model with its format and quantisation: what a comparison of backends compares."""
    target = results.get("target") or {}
    fmt = target.get("model_format")
    details = [format_name(fmt), target.get("quantisation")]
    shown = " ".join(part for part in details if part)
    return (target.get("model") or "-") + (f" ({shown})" if shown else "")


def _goodput_table(entries: list[Entry]) -> list[str]:
    header = [
        "Node",
        "Backend",
        "Workload",
        "Model (format)",
        "Goodput req/s (conc.)",
        "Max conc. within SLO",
    ]
    header += [
        "Output tok/s there",
        "Tokens from",
        "Bandwidth GB/s (source)",
        "Decode bound tok/s",
        "Achieved",
    ]
    rows, notes = [], []
    for entry in entries:
        results = entry.results
        goodput, bound = results.get("goodput") or {}, results.get("decode_bound") or {}
        within = results.get("max_concurrency_within_slo") or {}
        fraction, warning = bound.get("achieved_fraction"), bound.get("warning")
        if fraction is not None and fraction > 1 + DECODE_BOUND_TOLERANCE and not warning:
            # Results written before the benchmark refused such fractions.
            warning = f"single stream at {fraction:.2f} x its bound: the bound is wrong, not the server"
        if warning:
            # Never a percentage above 100: the bound is wrong, and the note says why.
            notes.append(f"- {entry.label}: {warning}.")
        method = bound.get("method") or (results.get("host") or {}).get("memory_bandwidth_method")
        if method:
            notes.append(f"- {entry.label} bandwidth: {method}.")
        rate = goodput.get("request_per_s")
        rows.append(
            [
                entry.host,
                entry.backend,
                entry.workload,
                _served_cell(results),
                "not measured" if rate is None else f"{rate:.2f} ({goodput.get('concurrency')})",
                "none" if within.get("concurrency") is None else str(within["concurrency"]),
                _num(within.get("output_tokens_per_s")),
                results.get("token_source") or "-",
                _bandwidth_cell(results, bound),
                _num(bound.get("tokens_per_s_upper")),
                "bound wrong (below)" if warning else "-" if fraction is None else f"{fraction:.1%}",
            ]
        )
    return _table(header, rows) + (["", *notes] if notes else [])


def _structured_table(entries: list[Entry]) -> list[str]:
    rows = [
        [entry.host, entry.backend, str(level["concurrency"]), f"{checked.get('valid')} of {checked.get('checked')}",
         "; ".join(checked.get("invalid_examples") or []) or "-"]
        for entry in entries
        for level in entry.results.get("levels") or []
        if (checked := level.get("structured"))
    ]  # fmt: skip
    if not rows:
        return []
    header = ["Node", "Backend", "Conc.", "Replies valid against the schema", "Why invalid (examples)"]
    return ["", "## Structured output", "", *_table(header, rows)]


def _prefix_table(entries: list[Entry]) -> list[str]:
    rows, notes = [], []
    for entry in entries:
        for level in entry.results.get("levels") or []:
            prefix = level.get("prefix")
            if not prefix:
                continue
            unique = prefix.get("unique") or {}
            rows.append(
                [
                    entry.host,
                    entry.backend,
                    str(level["concurrency"]),
                    str(prefix.get("shared_prefix_tokens")),
                    _num((level.get("ttft_ms") or {}).get("median")),
                    _num((unique.get("ttft_ms") or {}).get("median")),
                    _num(prefix.get("ttft_p50_ratio_unique_over_shared"), 2),
                    _num((level.get("cached_prompt_tokens") or {}).get("median"), 0),
                    _num((unique.get("cached_prompt_tokens") or {}).get("median"), 0),
                ]
            )
            if prefix.get("cache_warning"):
                notes.append(
                    f"- {entry.label} at concurrency {level['concurrency']}: {prefix['cache_warning']}."
                )
    if not rows:
        return []
    header = ["Node", "Backend", "Conc.", "Prefix words", "TTFT p50 ms shared", "TTFT p50 ms unique"]
    header += ["Unique / shared", "Cached tokens p50 shared", "Cached tokens p50 unique"]
    return [
        "",
        "## Shared prefix: TTFT with and without it",
        "",
        *_table(header, rows),
        *(["", *notes] if notes else []),
    ]


def _workload_lines(entries: list[Entry]) -> list[str]:
    if not entries:
        return []
    first = entries[0].results
    workload, goodput = first.get("workload") or {}, first.get("goodput") or {}
    started = min(entry.results.get("started_at") or "" for entry in entries)
    finished = max(entry.results.get("finished_at") or "" for entry in entries)
    return [
        f"- Measured {started} to {finished} (UTC).",
        f"- Workload: concurrency {workload.get('concurrency')}, {workload.get('requests_per_level')} "
        f"requests per level, about {workload.get('input_tokens')} input and {workload.get('output_tokens')} "
        f"output tokens per request (ignore_eos {workload.get('ignore_eos')}), after "
        f"warm-up requests: {workload.get('warmup_requests')}; {workload.get('load')}.",
        f"- SLOs: TTFT <= {goodput.get('slo_ttft_ms')} ms and TPOT <= {goodput.get('slo_tpot_ms')} ms. Goodput: "
        "requests per second whose own TTFT and TPOT met them (and whose reply was valid, where checked); "
        "max concurrency within SLO: the highest level whose p95s met them with no failed request.",
    ]


def _node_lines(node: dict[str, Any]) -> list[str]:
    lines = [f"### {node['host']}", ""]
    if node.get("hardware"):
        lines += [f"Hardware: {node['hardware']}", ""]
    for item in node.get("skipped") or []:
        lines.append(f"- Skipped {item['backend']}: {item['reason']}")
    if node.get("skipped"):
        lines.append("")
    recommendation = node.get("recommendation") or {}
    if not recommendation:
        return [*lines, "No recommendation was made for this node.", ""]
    choice = recommendation.get("choice")
    lines.append(f"**Recommended backend: {choice or 'none'}**")
    lines.append("")
    lines += [f"- {reason}" for reason in recommendation.get("reasons") or []]
    lines.append("")
    rows = [
        [
            row["backend"],
            "yes" if row.get("eligible") else "no",
            _num(row.get("score")),
            " ".join(row.get("reasons") or []),
        ]
        for row in recommendation.get("ranking") or []
    ]
    return [*lines, *_table(["Backend", "Eligible", "Score", "Why"], rows), ""]


def _definition_lines(entries: list[Entry]) -> list[str]:
    definitions = entries[0].results.get("metric_definitions") or {} if entries else {}
    names = (
        "ttft_ms",
        "ttfat_ms",
        "tpot_ms",
        "e2el_ms",
        "output_tokens_per_s",
        "server_tpot_ms",
        "output_tokens",
    )
    return [f"- `{name}`: {definitions[name]}" for name in names if name in definitions]


def render_markdown(
    run_id: str,
    entries: list[Entry],
    nodes: list[dict[str, Any]],
    charts: list[str],
    charts_note: str | None,
    failed_hosts: list[str],
    tunings: list[dict[str, Any]] | None = None,
) -> str:
    lines = [f"# Benchmark {run_id}", ""]
    lines += _workload_lines(entries)
    lines += [f"- Node failed before it could report: {host}" for host in failed_hosts]
    lines += ["", "## Results per concurrency level", ""]
    lines += _levels_table(entries) if entries else ["No backend was benchmarked."]
    if entries:
        lines += ["", "## Goodput and decode bound", "", *_goodput_table(entries)]
        lines += _structured_table(entries) + _prefix_table(entries)
    lines += ["", "## Charts", ""]
    titles = {name: title for name, title, _, _ in CHARTS}
    lines += [f"![{titles[name]}]({name})" for name in charts]
    if charts_note:
        lines.append(charts_note)
    lines += ["", "## Recommendation per node", ""]
    for node in nodes:
        lines += _node_lines(node)
    lines += _tuning_lines(tunings or [])
    definitions = _definition_lines(entries)
    if definitions:
        lines += ["## Definitions", "", *definitions, ""]
    return "\n".join(lines).rstrip() + "\n"


def render_charts(entries: list[Entry]) -> tuple[dict[str, bytes], str | None]:
    """PNG bytes per chart file name; the note says why there are none."""
    if not entries:
        return {}, "Charts skipped: no results to plot."
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return {}, "Charts skipped: matplotlib is not installed on the controller (pip install matplotlib)."
    levels = sorted(
        {level["concurrency"] for entry in entries for level in entry.results.get("levels") or []}
    )
    charts = {}
    for name, title, ylabel, key in CHARTS:
        # Figure + the Agg canvas directly: no pyplot, so no global state and no display needed.
        figure = Figure(figsize=(7, 4.2), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for entry in entries:
            points = sorted(
                (level["concurrency"], level_value(level, key)) for level in entry.results.get("levels") or []
            )
            # NaN leaves a gap where a level completed nothing, instead of drawing through it.
            ys = [math.nan if value is None else value for _, value in points]
            line = axes.plot([x for x, _ in points], ys, marker="o", label=entry.label)[0]
            unique = [
                (
                    level["concurrency"],
                    ((level.get("prefix") or {}).get("unique") or {}).get("ttft_ms", {}).get("p95"),
                )
                for level in entry.results.get("levels") or []
            ]
            if key == "ttft_p95" and any(value is not None for _, value in unique):
                # The shared-prefix workload's control requests: the same colour, dashed.
                values = [math.nan if value is None else value for _, value in sorted(unique)]
                axes.plot(
                    [x for x, _ in sorted(unique)], values, marker="o", linestyle="--", color=line.get_color(),
                    label=f"{entry.label} (no shared prefix)",
                )  # fmt: skip
        axes.set_xscale("log", base=2)
        axes.set_xticks(levels, [str(level) for level in levels])
        axes.minorticks_off()
        axes.set_xlabel("concurrent requests")
        axes.set_ylabel(ylabel)
        axes.set_title(title)
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
        figure.tight_layout()
        buffer = io.BytesIO()
        # No timestamp in the metadata: the same results give the same bytes (no spurious change).
        figure.savefig(buffer, format="png", metadata={"Software": None})
        charts[name] = buffer.getvalue()
    return charts, None


def _differs(path: Path, content: bytes) -> bool:
    return not path.is_file() or path.read_bytes() != content


def build_report(
    run_dir: Path,
    run_id: str,
    nodes: list[dict[str, Any]],
    failed_hosts: list[str],
    write: bool,
) -> dict[str, Any]:
    """Render the report; write it only when `write` (check mode passes False)."""
    entries = load_entries(run_dir, nodes, missing_ok=not write)
    tunings = load_tunings(run_dir, nodes, missing_ok=not write)
    # Drawn in memory in check mode too, so `changed` compares the real bytes.
    charts, note = render_charts(entries)
    chart_names = list(charts)
    markdown = render_markdown(run_id, entries, nodes, chart_names, note, failed_hosts, tunings)
    report = run_dir / REPORT_FILE
    files = {REPORT_FILE: markdown.encode("utf-8"), **charts}
    changed = any(_differs(run_dir / name, content) for name, content in files.items())
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            if _differs(run_dir / name, content):
                (run_dir / name).write_bytes(content)
    return {
        "changed": changed,
        "report_path": str(report),
        "markdown": markdown,
        "charts": [str(run_dir / name) for name in chart_names],
        "charts_skipped": note,
        "results_files": [
            str(run_dir / results_file_name(entry.host, entry.backend, entry.workload)) for entry in entries
        ],
    }
