"""recommend_backend: hardware eligibility, the product brief's prior, and measurements overriding it."""

from __future__ import annotations

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


def results(backend: str, goodput: int | None, tokens_per_s: dict[int, float]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "target": {"backend": backend},
        "goodput": {"concurrency": goodput, "slo_ttft_ms": 1000.0, "slo_tpot_ms": 100.0},
        "levels": [{"concurrency": c, "output_tokens_per_s": t} for c, t in tokens_per_s.items()],
    }


@pytest.mark.parametrize(
    ("gpu", "studio", "allowed_choices", "never"),
    [
        (CPU, SMALL, {"llamacpp", "ollama"}, {"vllm", "sglang"}),
        (CPU, LARGE, {"llamacpp", "ollama"}, {"vllm", "sglang"}),
        (AMD, SMALL, {"ollama", "llamacpp"}, {"vllm", "sglang"}),
        (AMD, LARGE, {"ollama", "llamacpp"}, {"vllm", "sglang"}),
        (H100, LARGE, {"vllm", "sglang"}, set()),
        (H100, SMALL, {"ollama"}, set()),
        (H100, PIPELINE, {"sglang"}, set()),
        (GTX1080, LARGE, {"llamacpp", "ollama"}, {"vllm", "sglang"}),
        (OLD_DRIVER, LARGE, {"llamacpp", "ollama"}, {"vllm", "sglang"}),
    ],
    ids=["cpu-small", "cpu-large", "amd-small", "amd-large", "h100-large", "h100-small", "h100-pipeline",
         "sm61-large", "old-driver-large"],
)  # fmt: skip
def test_prior_by_hardware_and_studio(gpu, studio, allowed_choices, never) -> None:
    answer = recommend(gpu, [], studio, CATALOGUE)
    assert answer["choice"] in allowed_choices
    eligible = {row["backend"] for row in answer["ranking"] if row["eligible"]}
    assert not eligible & never
    assert [row["backend"] for row in answer["ranking"] if not row["eligible"]] == [
        row["backend"] for row in answer["ranking"][len(eligible) :]
    ]  # ineligible backends rank last
    assert all(
        row["reasons"] and all(isinstance(r, str) for r in row["reasons"]) for row in answer["ranking"]
    )


def test_ineligible_reasons_name_the_missing_hardware() -> None:
    ranking = {row["backend"]: row for row in recommend(GTX1080, [], LARGE, CATALOGUE)["ranking"]}
    assert ranking["vllm"]["score"] == 0 and "compute capability 7.5" in ranking["vllm"]["reasons"][0]
    amd = {row["backend"]: row for row in recommend(AMD, [], LARGE, CATALOGUE)["ranking"]}
    assert "cannot run on rocm" in amd["sglang"]["reasons"][0]


def test_far_better_measured_goodput_overrides_the_prior() -> None:
    # Small NVIDIA studio: the prior says Ollama, but llama.cpp held the SLO at 8 where Ollama held 1.
    measured = [
        results("ollama", 1, {1: 40.0, 2: 45.0, 4: 48.0}),
        results("llamacpp", 8, {1: 42.0, 2: 80.0, 4: 150.0}),
    ]
    answer = recommend(H100, measured, SMALL, CATALOGUE)
    assert answer["choice"] == "llamacpp"
    override = next(reason for reason in answer["reasons"] if "override the prior" in reason)
    assert "preferred ollama" in override
    assert "llamacpp goodput 8 concurrent requests" in override and "80.0 output tokens/s" in override
    assert "ollama goodput 1" in override


def test_measurements_that_agree_keep_the_prior_and_say_so() -> None:
    measured = {
        "vllm": results("vllm", 64, {32: 2400.0, 64: 3900.0}),
        "sglang": results("sglang", 32, {32: 2300.0, 64: 3100.0}),
    }
    answer = recommend(H100, measured, LARGE, CATALOGUE)
    assert answer["choice"] == "vllm"
    assert any(reason.startswith("Measurements agree with the prior") for reason in answer["reasons"])
    # Throughput is read at the level nearest the studio's 40 users from below: 32.
    assert "2400.0 output tokens/s at concurrency 32" in answer["reasons"][-2]


def test_a_single_measurement_does_not_override() -> None:
    answer = recommend(H100, [results("llamacpp", 64, {32: 5000.0})], LARGE, CATALOGUE)
    assert answer["choice"] == "vllm"
    assert any("nothing to compare" in reason for reason in answer["reasons"])


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
