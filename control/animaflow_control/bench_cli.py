"""animaflow-bench: the llm_benchmark module's benchmark, run from a shell.

Same options and the same core as the module (module_utils/llm_bench), so a number printed here
and one written by a playbook mean the same thing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench import (
    DEFAULTS,
    WORKLOADS,
    BenchConfig,
    run_benchmark,
)


def _levels(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from error


def _json_file(text: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(text).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"cannot read JSON from {text}: {error}") from error
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError(f"{text} must hold a JSON object")
    return data


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="animaflow-bench",
        description="Benchmark an OpenAI-compatible server (closed loop, streaming, schema version 1).",
    )
    parser.add_argument("--base-url", required=True, help="server root, e.g. http://127.0.0.1:8080")
    parser.add_argument("--model", required=True)
    parser.add_argument("--api-key", help="sent as Authorization: Bearer KEY")
    parser.add_argument(
        "--concurrency",
        type=_levels,
        default=DEFAULTS["concurrency"],
        help="comma-separated levels (default %(default)s)",
    )
    parser.add_argument("--requests-per-level", type=int, default=DEFAULTS["requests_per_level"])
    parser.add_argument("--input-tokens", type=int, default=DEFAULTS["input_tokens"])
    parser.add_argument("--output-tokens", type=int, default=DEFAULTS["output_tokens"])
    parser.add_argument("--warmup-requests", type=int, default=DEFAULTS["warmup_requests"])
    parser.add_argument("--ignore-eos", action=argparse.BooleanOptionalAction, default=DEFAULTS["ignore_eos"])
    parser.add_argument("--slo-ttft-ms", type=float, default=DEFAULTS["slo_ttft_ms"])
    parser.add_argument("--slo-tpot-ms", type=float, default=DEFAULTS["slo_tpot_ms"])
    parser.add_argument("--timeout-s", type=float, default=DEFAULTS["timeout_s"])
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--backend")
    parser.add_argument("--backend-version")
    parser.add_argument("--model-bytes", type=int)
    parser.add_argument(
        "--memory-bandwidth-gbps", type=float, help="the decode bound's bandwidth, used as given"
    )
    parser.add_argument(
        "--memory-bandwidth-source",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="cpu: measure RAM reads with --threads threads; gpu: the GPU facts' datasheet figure; "
        "auto (default): gpu when --gpu-facts shows a usable GPU",
    )
    parser.add_argument("--threads", type=int, help="readers for the cpu measurement: the server's threads")
    parser.add_argument("--gpus-used", type=int, help="GPUs the server spreads the model over")
    parser.add_argument("--gpu-split", choices=("tensor", "layer"), help="default: layer for llamacpp/ollama")
    parser.add_argument("--gpu-python", help="python with torch, to time a copy on GPU 0 (unproven)")
    parser.add_argument("--gpu-facts", type=_json_file, help="JSON file with animaflow_gpu facts")
    parser.add_argument("--cpu-facts", type=_json_file, help="JSON file with animaflow_cpu facts")
    parser.add_argument(
        "--client-processes", type=int, help="processes the client spreads streams over (default: 1 per 64)"
    )
    parser.add_argument(
        "--workload",
        choices=WORKLOADS,
        default=DEFAULTS["workload"],
        help="chat (default); structured: JSON replies under a json_schema, each checked (needs "
        "--no-ignore-eos and --output-tokens >= 256, a cap); shared_prefix: one long system prompt "
        "shared by every request, against unique-prefix controls",
    )
    parser.add_argument(
        "--shared-prefix-tokens",
        type=int,
        default=DEFAULTS["shared_prefix_tokens"],
        help="shared_prefix: the shared system prompt's length in words, about 1 token each (default %(default)s)",
    )
    parser.add_argument("--output", type=Path, help="write the results JSON here")
    return parser


def _ms(summary: dict[str, Any], key: str) -> str:
    value = summary[key]
    return "-" if value is None else f"{value:.1f}"


def render_table(results: dict[str, Any]) -> str:
    header = (
        "conc", "ok", "fail", "req/s", "out tok/s", "TTFR p50", "TTFT p50", "TTFT p95", "TTFAT p50",
        "TPOT p50", "TPOT p95", "ITL p50", "E2EL p95", "errors",
    )  # fmt: skip
    rows = [header]
    for level in results["levels"]:
        rows.append(
            (
                str(level["concurrency"]),
                str(level["completed"]),
                str(level["failed"]),
                f"{level['request_per_s'] or 0:.2f}",
                f"{level['output_tokens_per_s'] or 0:.1f}",
                _ms(level["ttfr_ms"], "median"),
                _ms(level["ttft_ms"], "median"),
                _ms(level["ttft_ms"], "p95"),
                _ms(level["ttfat_ms"], "median"),
                _ms(level["tpot_ms"], "median"),
                _ms(level["tpot_ms"], "p95"),
                _ms(level["itl_ms"], "median"),
                _ms(level["e2el_ms"], "p95"),
                ", ".join(f"{kind}={count}" for kind, count in level["errors"].items()) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    goodput, bound = results["goodput"], results["decode_bound"]
    lines.append("")
    lines.append(
        "latencies in ms; TPOT = (E2EL - TTFT) / (output_tokens - 1); TTFR counts a role-only chunk; "
        "TTFAT = first answer (content) token, after any reasoning"
    )
    lines.append(f"output tokens from: {results['token_source']} ({results['token_source_note']})")
    within = results["max_concurrency_within_slo"]
    rate = "none" if goodput["request_per_s"] is None else f"{goodput['request_per_s']:.2f} requests/s"
    lines.append(
        f"goodput: {rate} inside the SLOs (TTFT <= {goodput['slo_ttft_ms']} ms, TPOT <= "
        f"{goodput['slo_tpot_ms']} ms, each request), at concurrency {goodput['concurrency']}; max concurrency "
        f"within SLO: {within['concurrency']} (p95s, no failures)"
    )
    for warning in results["client"]["warnings"]:
        lines.append(f"WARNING (the client may have measured itself): {warning}")
    lines += workload_lines(results)
    host = results["host"]
    lines.append(
        f"memory bandwidth: {host['memory_bandwidth_gbps']} GB/s ({host.get('memory_bandwidth_source')}: "
        f"{host['memory_bandwidth_method']})"
    )
    if bound.get("warning"):
        lines.append(f"decode bound: {bound['tokens_per_s_upper']} tokens/s - WARNING: {bound['warning']}")
    elif bound["tokens_per_s_upper"] is not None:
        fraction = bound["achieved_fraction"]
        lines.append(
            f"decode bound: {bound['tokens_per_s_upper']} tokens/s; single stream reached "
            f"{'-' if fraction is None else f'{fraction:.0%}'} of it"
        )
    return "\n".join(lines)


def workload_lines(results: dict[str, Any]) -> list[str]:
    """Per level: valid replies (structured), TTFT with and without the shared prefix (shared_prefix)."""
    lines = []
    for level in results["levels"]:
        checked, prefix = level.get("structured"), level.get("prefix")
        if checked:
            examples = "; ".join(checked["invalid_examples"])
            lines.append(
                f"concurrency {level['concurrency']}: {checked['valid']} of {checked['checked']} replies met "
                f"the schema{f' (invalid: {examples})' if examples else ''}"
            )
        if prefix:
            unique = prefix["unique"]
            lines.append(
                f"concurrency {level['concurrency']}: TTFT p50 {_ms(level['ttft_ms'], 'median')} ms with the "
                f"shared {prefix['shared_prefix_tokens']}-token prefix (cached p50 "
                f"{level['cached_prompt_tokens']['median']}), {_ms(unique['ttft_ms'], 'median')} ms with unique "
                f"ones (cached p50 {unique['cached_prompt_tokens']['median']}): x"
                f"{prefix['ttft_p50_ratio_unique_over_shared']}"
            )
            if prefix.get("cache_warning"):
                lines.append(f"WARNING: {prefix['cache_warning']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = BenchConfig(
        base_url=args.base_url,
        model=args.model,
        api_key=args.api_key,
        concurrency=args.concurrency,
        requests_per_level=args.requests_per_level,
        input_tokens=args.input_tokens,
        output_tokens=args.output_tokens,
        warmup_requests=args.warmup_requests,
        ignore_eos=args.ignore_eos,
        slo_ttft_ms=args.slo_ttft_ms,
        slo_tpot_ms=args.slo_tpot_ms,
        timeout_s=args.timeout_s,
        seed=args.seed,
        backend=args.backend,
        backend_version=args.backend_version,
        model_bytes=args.model_bytes,
        gpu=args.gpu_facts,
        cpu=args.cpu_facts,
        memory_bandwidth_gbps=args.memory_bandwidth_gbps,
        memory_bandwidth_source=args.memory_bandwidth_source,
        threads=args.threads,
        gpus_used=args.gpus_used,
        gpu_split=args.gpu_split,
        gpu_python=args.gpu_python,
        client_processes=args.client_processes,
        workload=args.workload,
        shared_prefix_tokens=args.shared_prefix_tokens,
    )
    try:
        config.validate()
    except ValueError as error:
        print(f"animaflow-bench: {error}", file=sys.stderr)
        return 2
    results = asyncio.run(run_benchmark(config))
    print(render_table(results))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results: {args.output}")
    # A run in which nothing completed says more about the server than about its speed.
    return 0 if any(level["completed"] for level in results["levels"]) else 1


if __name__ == "__main__":
    sys.exit(main())
