"""The catalogue loader and lookup, and the filters the roles and playbooks call instead of Jinja pipelines.

Expected values are what the Jinja expressions these filters replaced produced on the same inputs: the
recorded nodes' facts (tests/integration/render/facts, gpu_facts on tests/unit/fixtures/gpu) and the
spellings -e accepts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.animaflow.inference.plugins.filter import (
    cmake_defines,
    extra_var_list,
    runnable_backends,
    tensor_parallel_size,
)
from ansible_collections.animaflow.inference.plugins.lookup.catalogue import LookupModule
from ansible_collections.animaflow.inference.plugins.module_utils.catalogue import load_catalogue

FACTS = Path(__file__).resolve().parents[1] / "integration" / "render" / "facts"
ALL = ["llamacpp", "ollama", "vllm", "sglang"]


def recorded_gpu(node: str) -> dict:
    return json.loads((FACTS / f"{node}.json").read_text(encoding="utf-8"))["animaflow_gpu"]


def test_the_catalogue_has_only_fields_something_reads() -> None:
    catalogue = load_catalogue()
    assert list(catalogue) == ALL
    read = {
        "title",
        "model_format",
        "accelerators",
        "min_compute_capability",
        "min_driver_version",
        "health_path",
    }
    assert all(set(entry) <= read for entry in catalogue.values())
    assert LookupModule().run([]) == [catalogue]


@pytest.mark.parametrize(
    ("node", "override", "expected"),
    [
        ("h100x8", {}, ALL),
        ("rtx4090", {}, ALL),
        ("mi300x2", {}, ["llamacpp", "ollama"]),
        ("rx7900xtx", {}, ["llamacpp", "ollama"]),
        ("cpu", {}, ["llamacpp", "ollama"]),
        # What matching the accelerator alone got wrong: vLLM and SGLang need driver 550 and sm_75.
        ("h100x8", {"driver_version": "535.104.05"}, ["llamacpp", "ollama"]),
        ("rtx4090", {"gpus": [{"vendor": "nvidia", "compute_capability": "6.1"}]}, ["llamacpp", "ollama"]),
        ("rtx4090", {"gpus": [{"vendor": "nvidia", "compute_capability": "3.7"}]}, []),
    ],
)
def test_runnable_backends_on_recorded_nodes(node, override, expected) -> None:
    gpu = {**recorded_gpu(node), **override}
    assert runnable_backends.runnable_backends(gpu) == expected
    assert runnable_backends.runnable_backends({"animaflow_gpu": gpu}, load_catalogue()) == expected
    assert (
        runnable_backends.FilterModule().filters()["runnable_backends"] is runnable_backends.runnable_backends
    )


# roles/llamacpp's flags for the recorded H100 node (avx512 Xeon, sm_90); cmake saw them in this order.
H100_FLAGS = {
    "CMAKE_BUILD_TYPE": "Release",
    "BUILD_SHARED_LIBS": "OFF",
    "GGML_NATIVE": "OFF",
    "CMAKE_INSTALL_RPATH": "$ORIGIN/../lib",
    "LLAMA_BUILD_NUMBER": "11312",
    "LLAMA_BUILD_COMMIT": "0c1e57098",
    "GGML_AVX512": "ON",
    "GGML_CUDA": "ON",
    "CMAKE_CUDA_ARCHITECTURES": "90",
}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            H100_FLAGS,
            [
                "-DCMAKE_BUILD_TYPE=Release",
                "-DBUILD_SHARED_LIBS=OFF",
                "-DGGML_NATIVE=OFF",
                "-DCMAKE_INSTALL_RPATH=$ORIGIN/../lib",
                "-DLLAMA_BUILD_NUMBER=11312",
                "-DLLAMA_BUILD_COMMIT=0c1e57098",
                "-DGGML_AVX512=ON",
                "-DGGML_CUDA=ON",
                "-DCMAKE_CUDA_ARCHITECTURES=90",
            ],
        ),
        (
            {"GGML_HIP": "ON", "GPU_TARGETS": "gfx942;gfx1100"},
            ["-DGGML_HIP=ON", "-DGPU_TARGETS=gfx942;gfx1100"],
        ),
        ({"N": 1, "T": True, "E": ""}, ["-DN=1", "-DT=True", "-DE="]),
        ({}, []),
    ],
)
def test_cmake_defines(flags, expected) -> None:
    assert cmake_defines.cmake_defines(flags) == expected
    assert cmake_defines.FilterModule().filters()["cmake_defines"] is cmake_defines.cmake_defines


@pytest.mark.parametrize(
    ("gpu_count", "heads", "requested", "expected"),
    [
        # The recorded nodes' GPU counts (8x H100, 2x MI300X, 1x RTX 4090, none) and the render models' heads.
        (8, 0, 0, 8),
        (8, 12, 0, 4),
        (8, 32, 0, 8),
        (8, 40, 0, 8),
        (8, 0, 2, 2),
        (8, 32, 3, 3),
        (2, 64, 0, 2),
        (1, 32, 0, 1),
        (0, 0, 0, 1),
        (0, 32, 3, 3),
        (6, 0, 0, 4),
        (3, 0, 0, 2),
        (12, 14, 0, 2),
        (16, 96, 0, 16),
        (64, 40, 0, 8),
        (100, 0, 0, 64),
        # As Jinja's int read the text inventories and -e give: 0 where it is not a number.
        (8, "", "x", 8),
        ("8", 40, "2.0", 2),
        (0, 0, -1, 1),
    ],
)
def test_tensor_parallel_size(gpu_count, heads, requested, expected) -> None:
    assert tensor_parallel_size.tensor_parallel_size(gpu_count, heads, requested) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("[llamacpp,ollama]", ["llamacpp", "ollama"]),
        ("llamacpp,ollama", ["llamacpp", "ollama"]),
        ("llamacpp", ["llamacpp"]),
        (" llamacpp , ollama ,", ["llamacpp", "ollama"]),
        ("[llamacpp, ' ollama ']", ["llamacpp", "ollama"]),
        (["llamacpp", "ollama"], ["llamacpp", "ollama"]),
        ("[]", []),
        ("vllm,,sglang", ["vllm", "sglang"]),
        ("[1, llamacpp]", ["1", "llamacpp"]),
        (["x", " "], ["x"]),
    ],
)
def test_extra_var_list_of_backends(given, expected) -> None:
    assert extra_var_list.extra_var_list(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("[1,2,4,8]", [1, 2, 4, 8]),
        ("1,2,4", [1, 2, 4]),
        ("4", [4]),
        (4, [4]),
        ([1, 2], [1, 2]),
        ("[1, '2']", [1, 2]),
        (" 1 , 2", [1, 2]),
        ("1,,2", [1, 0, 2]),
        ("a,b", [0, 0]),
        ("2.5,3", [2, 3]),
        ("", []),
        ("[]", []),
    ],
)
def test_extra_var_list_of_levels(given, expected) -> None:
    assert extra_var_list.extra_var_list(given, "int") == expected
    assert extra_var_list.FilterModule().filters()["extra_var_list"] is extra_var_list.extra_var_list
