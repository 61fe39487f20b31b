"""The llamacpp role configures a ROCm build as upstream documents it (issue 14 §5):
HIPCXX="$(hipconfig -l)/clang" and HIP_PATH="$(hipconfig -R)" in the environment of the CMake
configure step, GGML_HIP=ON and GPU_TARGETS from the node's gfx targets.

There is no ROCm here, so two stand-ins: tests/standins/hipconfig (answers -l and -R as a ROCm 6.4.1
install does) and a source tarball whose CMake project builds a `llama-server` target and writes down
what its configure step saw. Everything else is the role's real build.yml on this machine as the build
node (apt, unarchive, cmake configure and build, bundle_libs, fetch into the controller cache), with
the recorded facts of a 2x MI300X node (tests/integration/render/facts/mi300x2.json).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from playbook_runner import run_playbook

ROOT = Path(__file__).resolve().parents[2]
FACTS = ROOT / "tests" / "integration" / "render" / "facts" / "mi300x2.json"

# Stand-in llama.cpp source: builds like llama.cpp (target llama-server in build/bin) and records what
# the role's configure step passed it.
CMAKELISTS = """cmake_minimum_required(VERSION 3.16)
project(llamacpp_configure_standin C)
file(WRITE @SEEN@
  "HIPCXX=$ENV{HIPCXX}\\nHIP_PATH=$ENV{HIP_PATH}\\nGGML_HIP=${GGML_HIP}\\nGPU_TARGETS=${GPU_TARGETS}\\n")
add_executable(llama-server main.c)
set_target_properties(llama-server PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
"""

PLAYBOOK = """---
- name: Build llama.cpp for ROCm with the role's build tasks
  hosts: localhost
  connection: local
  gather_facts: true
  environment:
    PATH: "{{ standins }}:{{ ansible_env.PATH }}"
  vars:
    llamacpp_version: rocm-standin
    llamacpp_cpu_baseline: avx2
    animaflow_cache_dir: "{{ cache }}"
  tasks:
    - name: Load the recorded MI300X node's GPU facts as ansible_facts
      ansible.builtin.set_fact:
        animaflow_gpu: "{{ (lookup('ansible.builtin.file', facts) | from_json).animaflow_gpu }}"
        cacheable: true

    - name: Build with the role's tasks
      ansible.builtin.include_role:
        name: animaflow.inference.llamacpp
        tasks_from: build.yml
      vars:
        backend_artifact_path: "{{ source }}"
        _llamacpp_build_dir: "{{ build_dir }}"
"""

pytestmark = pytest.mark.slow


def test_rocm_configure_gets_hipcxx_and_hip_path(tmp_path: Path) -> None:
    project = tmp_path / "llama.cpp-rocm-standin"
    project.mkdir()
    # Outside the build directory, which build.yml removes at the end.
    seen = tmp_path / "seen.txt"
    (project / "CMakeLists.txt").write_text(CMAKELISTS.replace("@SEEN@", str(seen)))
    (project / "main.c").write_text("int main(void) { return 0; }\n")
    source = tmp_path / "llama.cpp-rocm-standin.tar.gz"
    with tarfile.open(source, "w:gz") as archive:
        archive.add(project, arcname=project.name)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    build_dir = tmp_path / "build-dir"
    done = run_playbook(
        tmp_path / "play.yml",
        "-e", f"standins={ROOT / 'tests' / 'standins'}", "-e", f"facts={FACTS}", "-e", f"source={source}",
        "-e", f"cache={tmp_path / 'controller'}", "-e", f"build_dir={build_dir}",
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert "Configure the build (rocm-standin-rocm-x86_64-avx2-gfx942)" in done.stdout
    assert seen.read_text().splitlines() == [
        "HIPCXX=/opt/rocm-6.4.1/lib/llvm/bin/clang",
        "HIP_PATH=/opt/rocm-6.4.1",
        "GGML_HIP=ON",
        "GPU_TARGETS=gfx942",
    ]
    kind = tmp_path / "controller" / "llamacpp" / "builds" / "rocm-standin-rocm-x86_64-avx2-gfx942"
    assert (kind / "llama-server").is_file()
    assert not (kind / "lib").exists()  # the stand-in links only libc: nothing to bundle
