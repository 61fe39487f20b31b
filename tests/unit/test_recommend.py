"""recommend_backend: hardware eligibility, the product brief's prior, and measurements overriding it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playbook_runner import run_on_localhost

from ansible_collections.animaflow.inference.plugins.filter.recommend_backend import (
    FilterModule,
    recommend_backend,
)
from ansible_collections.animaflow.inference.plugins.module_utils.catalogue import load_catalogue
from ansible_collections.animaflow.inference.plugins.module_utils.recommend import recommend

CATALOGUE = load_catalogue()

CPU = {"accelerator": "cpu", "vendor": "none", "count": 0, "gpus": []}
AMD = {
    "accelerator": "rocm",
    "vendor": "amd",
    "count": 2,
    "gpus": [{"vendor": "amd", "gfx_target": "gfx942", "compute_capability": None}] * 2,
}
H100 = {
    "accelerator": "cuda",
    "vendor": "nvidia",
    "count": 8,
    "driver_version": "550.54.15",
    "gpus": [{"vendor": "nvidia", "compute_capability": "9.0"}] * 8,
}
GTX1080 = {**H100, "gpus": [{"vendor": "nvidia", "compute_capability": "6.1"}]}
OLD_DRIVER = {**H100, "driver_version": "535.104.05"}
SMALL = {"name": "s", "artists": 3, "concurrent_users": 2, "workload": "interactive"}
LARGE = {"name": "l", "artists": 120, "concurrent_users": 40, "workload": "interactive"}
PIPELINE = {"name": "p", "artists": 10, "concurrent_users": 3, "workload": "pipeline"}


def results(
    backend: str,
    goodput: float | None,
    tokens_per_s: dict[int, float],
    within: int | None = None,
    *,
    model: str = "qwen2.5-7b-instruct-q4",
    family: str = "qwen2.5-7b-instruct",
    fmt: str = "gguf",
    quant: str = "Q4_K_M",
    workload: str = "chat",
) -> dict[str, Any]:
    """llm_benchmark results (schema_version 2) with the figures the recommendation reads."""
    slo = {"slo_ttft_ms": 1000.0, "slo_tpot_ms": 100.0}
    top = max(tokens_per_s)
    return {
        "schema_version": 2,
        "target": {
            "backend": backend,
            "model": model,
            "model_family": family,
            "model_format": fmt,
            "quantisation": quant,
        },
        "workload": {"kind": workload},
        "goodput": {"request_per_s": goodput, "concurrency": top, **slo},
        "max_concurrency_within_slo": {"concurrency": top if within is None else within, **slo},
        "levels": [{"concurrency": c, "output_tokens_per_s": t} for c, t in tokens_per_s.items()],
    }


def test_far_better_measured_goodput_overrides_the_prior() -> None:
    # Small NVIDIA studio: the prior says Ollama, but llama.cpp held the SLOs at 8 where Ollama held 1.
    measured = [
        results("ollama", 0.4, {1: 40.0, 2: 45.0, 4: 48.0}, within=1),
        results("llamacpp", 2.5, {1: 42.0, 2: 80.0, 4: 150.0}, within=8),
    ]
    answer = recommend(H100, measured, SMALL, CATALOGUE)
    assert answer["choice"] == "llamacpp"
    override = next(reason for reason in answer["reasons"] if "override the prior" in reason)
    assert "preferred Ollama" in override
    assert "80.0 against 45.0 at concurrency 2" in override and "goodput 2.50 against 0.40" in override
    assert "only llama.cpp meets the SLOs at 2 concurrent users" in override


def test_measurements_that_agree_keep_the_prior_and_say_so() -> None:
    measured = {
        "vllm": results("vllm", 30.0, {32: 2400.0, 64: 3900.0}, fmt="hf", quant="BF16"),
        "sglang": results("sglang", 22.0, {32: 2300.0, 64: 3100.0}, fmt="hf", quant="BF16"),
    }
    answer = recommend(H100, measured, LARGE, CATALOGUE)
    assert answer["choice"] == "vllm"
    agree = next(
        reason for reason in answer["reasons"] if reason.startswith("Measurements agree with the prior")
    )
    # Throughput is read at the level nearest the studio's 40 users from below: 32.
    assert "2400.0 against 2300.0 at concurrency 32" in agree and "both meet the SLOs at 40" in agree


def test_prior_kept_over_a_faster_backend_says_so_with_both_numbers() -> None:
    # The review's CPU farm: llama.cpp ahead on the chart, Ollama picked. Now the reasons must say it.
    measured = [
        results("ollama", 1.0, {1: 20.0, 2: 36.0}),
        results("llamacpp", 1.0, {1: 22.0, 2: 40.0}),
    ]
    answer = recommend(CPU, measured, SMALL, CATALOGUE)
    assert answer["choice"] == "ollama"
    assert not any("agree with the prior" in reason for reason in answer["reasons"])
    verdict = next(reason for reason in answer["reasons"] if "measured ahead" in reason)
    assert "llama.cpp made +11% output tokens/s (40.0 against 36.0 at concurrency 2)" in verdict
    assert "both meet the SLOs at 2 concurrent users" in verdict
    assert "Ollama kept because the brief prefers it" in verdict and "40 against 30 prior points" in verdict


def test_a_backend_meeting_the_slos_beats_the_prior_that_does_not() -> None:
    # Large NVIDIA studio, 40 users: vLLM (the prior) holds the SLOs only up to 16; SGLang up to 64.
    measured = [
        results("vllm", 12.0, {16: 1500.0, 32: 2600.0}, within=16, fmt="hf", quant="BF16"),
        results("sglang", 11.0, {16: 1400.0, 32: 2500.0}, within=64, fmt="hf", quant="BF16"),
    ]
    answer = recommend(H100, measured, LARGE, CATALOGUE)
    assert answer["choice"] == "sglang"
    verdict = next(reason for reason in answer["reasons"] if "measured ahead" in reason)
    assert "only SGLang meets the SLOs at 40 concurrent users" in verdict


def test_the_verdict_names_formats_quantisations_and_their_quality_cost() -> None:
    measured = [
        results("llamacpp", 9.0, {8: 400.0}),
        results("vllm", 7.0, {8: 350.0}, model="qwen2.5-7b-instruct", fmt="hf", quant="BF16"),
    ]
    answer = recommend(H100, measured, LARGE, CATALOGUE)
    compared = next(reason for reason in answer["reasons"] if reason.startswith("Compared:"))
    assert "llama.cpp serving qwen2.5-7b-instruct-q4 (GGUF Q4_K_M)" in compared
    assert "vLLM serving qwen2.5-7b-instruct (Hugging Face BF16)" in compared
    assert "one model family (qwen2.5-7b-instruct)" in compared
    assert "+0.1754 perplexity on Llama-3-8B" in compared and "BF16: full-precision" in compared
    assert "Q4_K_M reads 3.5x fewer bytes per token than BF16" in compared
    assert {row["quantisation"] for row in answer["compared"]} == {"Q4_K_M", "BF16"}


def test_results_of_another_family_are_not_compared() -> None:
    measured = [
        results("llamacpp", 9.0, {8: 400.0}),
        results("ollama", 8.0, {8: 390.0}),
        results("vllm", 50.0, {8: 900.0}, model="llama-3-8b", family="llama-3-8b", fmt="hf", quant="BF16"),
    ]
    answer = recommend(H100, measured, LARGE, CATALOGUE)
    assert answer["choice"] != "vllm" or "Measured" not in " ".join(answer["ranking"][0]["reasons"])
    note = next(reason for reason in answer["reasons"] if reason.startswith("Compared only backends serving"))
    assert "vllm (llama-3-8b)" in note and "benchmark_family" in note
    ranked = {row["backend"]: row for row in answer["ranking"]}
    assert "measured" not in ranked["vllm"]


def test_the_studio_workload_picks_the_results() -> None:
    # A pipeline studio: structured-output results decide; chat results are left out, and say so.
    measured = [
        results("vllm", 40.0, {8: 900.0}, fmt="hf", quant="BF16", workload="chat"),
        results("sglang", 10.0, {8: 500.0}, fmt="hf", quant="BF16", workload="chat"),
        results("vllm", 30.0, {8: 800.0}, fmt="hf", quant="BF16", workload="structured"),
        results("sglang", 35.0, {8: 950.0}, fmt="hf", quant="BF16", workload="structured"),
    ]
    answer = recommend(H100, measured, PIPELINE, CATALOGUE)
    assert answer["workload"] == "structured" and answer["choice"] == "sglang"
    assert any("Workload: structured output (JSON schema)" in reason for reason in answer["reasons"])
    only_chat = recommend(H100, measured[:2], PIPELINE, CATALOGUE)
    assert any(
        "were not used" in reason and "benchmark_workloads=structured" in reason
        for reason in only_chat["reasons"]
    )


def test_schema_version_1_results_still_compare() -> None:
    old = {
        "schema_version": 1,
        "target": {"backend": "llamacpp"},
        "goodput": {"concurrency": 8, "slo_ttft_ms": 1000.0, "slo_tpot_ms": 100.0},
        "levels": [{"concurrency": 2, "output_tokens_per_s": 80.0}],
    }
    other = {**old, "target": {"backend": "ollama"}, "goodput": {**old["goodput"], "concurrency": 1}}
    answer = recommend(CPU, [old, other], SMALL, CATALOGUE)
    assert answer["choice"] == "llamacpp"  # concurrency within the SLOs, 8 against 1, decides
    assert "goodput not measured" in " ".join(answer["ranking"][0]["reasons"])


@pytest.mark.parametrize("lead", [0.5, 0.9, 1.0, 1.05, 1.1, 1.25, 1.6, 3.0])
@pytest.mark.parametrize("studio", [SMALL, LARGE], ids=["small", "large"])
def test_the_reasons_never_hide_a_faster_backend(lead, studio) -> None:
    """Whatever wins, a backend measured faster than the choice is named in the verdict with its figure."""
    users = studio["concurrent_users"]
    throughput = {"ollama": 100.0, "llamacpp": 100.0 * lead}
    measured = [results(name, tps / 100.0, {users: tps}) for name, tps in throughput.items()]
    answer = recommend(CPU, measured, studio, CATALOGUE)
    other = next(name for name in throughput if name != answer["choice"])
    verdict = answer["reasons"][-2]
    if throughput[other] > throughput[answer["choice"]]:
        assert "agree with the prior" not in verdict
        assert f"{throughput[other]:.1f} against {throughput[answer['choice']]:.1f}" in verdict
    else:
        assert f"{throughput[answer['choice']]:.1f} against {throughput[other]:.1f}" in verdict


# The README's "Which backend should I choose?" table, row by row: (studio column, node column) -> the
# hardware and studios that row covers (both ends of each size band).
README = Path(__file__).resolve().parents[2] / "README.md"
TITLES = {"Ollama": "ollama", "vLLM": "vllm", "SGLang": "sglang", "llama.cpp": "llamacpp"}
ROW_CASES = {
    ("Small: 1-10 artists", "NVIDIA GPU"): [(H100, {"artists": 1}), (H100, {"artists": 10, "concurrent_users": 10})],
    ("Large: more than 10 artists", "NVIDIA GPU"): [(H100, {"artists": 11}), (H100, {"artists": 120})],
    ("Heavy pipeline automation (`workload: pipeline`), any size", "NVIDIA GPU"): [
        (H100, {"artists": 3, "workload": "pipeline"}),
        (H100, {"artists": 120, "workload": "pipeline"}),
    ],
    ("Small: 1-10 artists", "no GPU, or AMD (ROCm, Vulkan)"): [
        (CPU, {"artists": 1}), (CPU, {"artists": 10}), (AMD, {"artists": 4}),
        (CPU, {"artists": 4, "workload": "pipeline"}),
    ],
    ("Large: more than 10 artists", "no GPU, or AMD"): [(CPU, {"artists": 11}), (AMD, {"artists": 120})],
}  # fmt: skip


def _readme_rows() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Which backend should I choose?", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")][2:]  # past head and rule
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def _named(cell: str) -> str:
    return next(name for title, name in TITLES.items() if cell.startswith(title))


def test_every_row_of_the_readme_table_is_what_the_prior_does() -> None:
    rows = _readme_rows()
    assert {(studio, node) for studio, node, _, _ in rows} == set(ROW_CASES), (
        "a row without cases, or a case without a row"
    )
    for studio_cell, node_cell, first, then in rows:
        for gpu, studio in ROW_CASES[(studio_cell, node_cell)]:
            answer = recommend(gpu, [], studio, CATALOGUE)
            eligible = [row["backend"] for row in answer["ranking"] if row["eligible"]]
            assert eligible[:2] == [_named(first), _named(then)], (studio_cell, node_cell, studio, eligible)
            assert answer["choice"] == _named(first)


def test_results_for_ineligible_backends_are_ignored() -> None:
    measured = [results("vllm", 64, {1: 900.0}), results("llamacpp", 1, {1: 10.0})]
    answer = recommend(AMD, measured, SMALL, CATALOGUE)
    assert answer["choice"] in {"ollama", "llamacpp"}


def test_filter_reads_the_collection_catalogue_and_is_registered() -> None:
    assert FilterModule().filters()["recommend_backend"] is recommend_backend
    assert recommend_backend({"animaflow_gpu": CPU}, [], SMALL)["choice"] == "ollama"


def test_filter_runs_in_a_play() -> None:
    expression = (
        "{{ {'accelerator': 'rocm', 'vendor': 'amd'} "
        "| animaflow.inference.recommend_backend([], {'concurrent_users': 30}) }}"
    )
    done = run_on_localhost("ansible.builtin.debug", f"msg={expression}", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"choice": "llamacpp"' in done.stdout
