"""The bundling rule (module_utils.shared_libs) on ldd output recorded from real binaries
(tests/unit/fixtures/ldd/README.md says where each was recorded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.animaflow.inference.plugins.module_utils.shared_libs import (
    classify,
    missing,
    missing_message,
    outside,
    parse_ldd,
    to_bundle,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ldd"


def ldd(name: str):
    return parse_ldd((FIXTURES / name).read_text(encoding="utf-8"))


def test_parse_resolved_not_found_vdso_and_interpreter() -> None:
    libraries = ldd("cuda_sample_builder_without_path.txt")
    by_name = {lib.name: lib.path for lib in libraries}
    assert by_name["libcublas.so.13"] is None
    assert by_name["libcudart.so.13"] == "/usr/local/cuda-13.0/lib/libcudart.so.13"
    assert by_name["linux-vdso.so.1"] is None
    assert by_name["ld-linux-x86-64.so.2"] == "/lib64/ld-linux-x86-64.so.2"
    assert len(libraries) == 8
    # The vDSO never has a file: only cuBLAS is missing.
    assert [lib.name for lib in missing(libraries)] == ["libcublas.so.13"]


def test_static_binary_needs_nothing() -> None:
    assert ldd("static_binary.txt") == []


def test_cuda_runtime_is_bundled_c_runtime_is_not() -> None:
    chosen = to_bundle(ldd("cuda_sample_builder.txt"))
    assert [lib.name for lib in chosen] == ["libcublas.so.13", "libcudart.so.13", "libcublasLt.so.13"]
    assert chosen[0].path is not None and chosen[0].path.endswith("nvidia/cu13/lib/libcublas.so.13")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("libc.so.6", "system"),
        ("libm.so.6", "system"),
        ("libstdc++.so.6", "system"),
        ("libgcc_s.so.1", "system"),
        ("ld-linux-x86-64.so.2", "system"),
        ("ld-linux-aarch64.so.1", "system"),
        ("libpthread.so.0", "system"),
        ("libcuda.so.1", "driver"),
        ("libnvidia-ml.so.1", "driver"),
        ("libnvidia-ptxjitcompiler.so.1", "driver"),
        ("libvulkan.so.1", "driver"),
        ("libcudart.so.13", "bundle"),
        ("libcublasLt.so.13", "bundle"),
        ("librocblas.so.4", "bundle"),
        ("libamdhip64.so.6", "bundle"),
        ("libhipblas.so.2", "bundle"),
        ("libgomp.so.1", "bundle"),
        ("libz.so.1", "bundle"),
    ],
)
def test_classify(name: str, kind: str) -> None:
    assert classify(name) == kind


def test_driver_library_is_never_bundled() -> None:
    libraries = ldd("cuda_sample_node_bundled_libcuda.txt")
    assert "libcuda.so.1" not in [lib.name for lib in to_bundle(libraries)]


def test_bundled_tree_on_node_resolves_inside_lib() -> None:
    libraries = ldd("cuda_sample_node_bundled.txt")
    assert missing(libraries) == []
    assert outside(libraries, "/opt/t/lib") == []
    assert missing_message("/opt/t/bin/llama-server", libraries) is None


def test_builder_paths_are_outside_the_tree() -> None:
    strays = outside(ldd("cuda_sample_builder.txt"), "/opt/t/lib")
    assert [lib.name for lib in strays] == ["libcublas.so.13", "libcudart.so.13", "libcublasLt.so.13"]


def test_unbundled_copy_names_each_missing_library() -> None:
    message = missing_message("/opt/u/bin/llama-server", ldd("cuda_sample_node_unbundled.txt"))
    assert message is not None
    assert "/opt/u/bin/llama-server cannot load libcublas.so.13, libcudart.so.13 on this node" in message
    assert "Fix: remove this kind's directory from the controller cache" in message
    assert "driver" not in message


def test_missing_driver_says_so() -> None:
    message = missing_message("/opt/t/bin/x", ldd("cuda_sample_node_bundled_libcuda.txt"))
    assert message is not None
    assert message.startswith("libcuda.so.1 comes from the GPU driver, which this node lacks")
    assert "never copied from the builder" in message
    assert "cannot load" not in message


def test_distro_libraries_outside_glibc_are_bundled() -> None:
    assert [lib.name for lib in to_bundle(ldd("python3_node.txt"))] == ["libz.so.1", "libexpat.so.1"]


def test_cpu_build_needs_nothing_beyond_the_c_and_cpp_runtime() -> None:
    libraries = ldd("llamacpp_cpu_b9976_builder.txt")
    assert {lib.kind for lib in libraries} == {"system"}
    assert to_bundle(libraries) == [] and missing(libraries) == []
