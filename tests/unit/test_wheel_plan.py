"""The install plan of a pip-installed backend: variant choice, pip sources, refusals (the wheel_plan filter)."""

from __future__ import annotations

import pytest

from ansible_collections.animaflow.inference.plugins.module_utils.wheel_plan import wheel_plan

VARIANTS = {
    "cu130": {"min_driver": "580", "index_urls": [], "versions": ["0.31.0", "0.33.0"]},
    "cu129": {
        "min_driver": "550",
        "index_urls": ["https://wheels.example/{version}/cu129", "https://torch.example/whl/cu129"],
        "versions": ["0.31.0"],
    },
}


def plan(version: str = "0.33.0", chosen: str = "auto", driver: str = "580.65", **sources: str) -> dict:
    return wheel_plan(VARIANTS, "vllm", "vLLM", version, chosen, driver, **sources)


def test_auto_takes_the_newest_variant_the_driver_runs_that_has_the_version() -> None:
    assert plan()["variant"] == "cu130" and plan()["usable"]
    older = plan("0.31.0", driver="550.54")
    assert older["variant"] == "cu129" and older["usable"]
    assert older["pip_env"] == {
        "PIP_EXTRA_INDEX_URL": "https://wheels.example/0.31.0/cu129 https://torch.example/whl/cu129"
    }


def test_a_version_the_driver_cannot_run_is_refused_with_the_fix() -> None:
    refused = plan("0.33.0", driver="550.54")
    assert not refused["usable"] and refused["variant"] == "cu129"
    assert refused["refusal"] == (
        "vLLM 0.33.0 has no cu129 wheel. vLLM 0.33.0 exists as cu130 (driver 580+); the variants: cu130 (driver "
        "580+) for vLLM 0.31.0, 0.33.0; cu129 (driver 550+) for vLLM 0.31.0. Nothing was changed. Fix: pin "
        "vllm_version=0.31.0 for this node (cu129 runs on its driver), or update the driver to R580+, or add 0.33.0 "
        "to vllm_wheel_variants.cu129.versions once that index serves it."
    )


@pytest.mark.parametrize(
    ("chosen", "driver", "problem"),
    [
        ("cu128", "580", "vllm_wheel_variant=cu128 is not a key of vllm_wheel_variants."),
        ("cu130", "550", "the cu130 wheel needs driver 580+."),
        ("auto", "0", "vllm_wheel_variant=none is not a key of vllm_wheel_variants."),
    ],
)
def test_refusals_name_the_problem(chosen: str, driver: str, problem: str) -> None:
    refused = plan(chosen=chosen, driver=driver)
    assert not refused["usable"] and refused["refusal"].startswith(problem)


def test_a_wheelhouse_replaces_the_indexes_and_credentials_stay_out_of_the_sources() -> None:
    mirrored = plan("0.31.0", driver="550", mirror="/srv/mirror/", index_url="https://pypi.studio/simple")
    assert mirrored["wheelhouse"] == "/srv/mirror/vllm/0.31.0/cu129" and not mirrored["wheelhouse_remote"]
    assert mirrored["pip_env"] == {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": "/var/cache/animaflow/vllm/0.31.0-cu129",
    }
    remote = plan(wheelhouse="https://farm:s3cret@wheels.studio/vllm")
    assert remote["pip_env"]["PIP_FIND_LINKS"] == "https://farm:s3cret@wheels.studio/vllm"
    assert remote["pip_sources"] == ["https://wheels.studio/vllm"]
    proxied = plan(index_url="https://u:p@pypi.studio/simple")
    assert proxied["pip_env"] == {"PIP_INDEX_URL": "https://u:p@pypi.studio/simple"}
    assert proxied["pip_sources"] == ["https://pypi.studio/simple"]
