"""A CUDA build of llama.cpp copied to a node without the CUDA SDK must still load (issue 14 §5).

The real CUDA llama-server takes about 40 min to build on 2 cores (`make cuda-llama-server` does that,
by hand), so here a small CUDA program stands in for it: compiled with nvcc for sm_90 and linked like
llama-server (cudart and cuBLAS, RUNPATH $ORIGIN/../lib), it goes through the llamacpp role's own tasks
(tests/infra/gpu-bundle.yml): bundle.yml on this machine (the build node), copy_build.yml on a container
of the node image, which has no CUDA at all. Bundled, ldd finds every library there and the program
runs; copied alone, as the role did before, the role stops naming the missing libraries.
Needs nvcc (this machine kind and CI have it at /usr/local/bin/nvcc), dockerd and the node image.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playbook_runner import run_playbook

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "infra"))
from cuda_wheels import cublas_root  # noqa: E402

NODE = "animaflow-gpu-bundle-node"
IMAGE = os.environ.get("ANIMAFLOW_NODE_IMAGE", "animaflow/node:bookworm")
INSTALLED = "/opt/animaflow/llamacpp/{version}/bin/llama-server"

# cudaMalloc and cublasCreate: the sample needs cudart and cuBLAS (and, through it, cuBLASLt) at load
# time, as llama-server does. --version answers before touching the GPU (there is none here).
SAMPLE = r"""
#include <cstdio>
#include <cstring>
#include <cuda_runtime.h>
#include <cublas_v2.h>
int main(int argc, char **argv) {
  if (argc > 1 && std::strcmp(argv[1], "--version") == 0) { std::puts("cuda-sample 1"); return 0; }
  void *p = nullptr;
  cudaError_t e = cudaMalloc(&p, 16);
  cublasHandle_t h;
  cublasStatus_t s = cublasCreate(&h);
  std::printf("cudaMalloc: %s, cublasCreate: %d\n", cudaGetErrorString(e), (int)s);
  return e == cudaSuccess && s == CUBLAS_STATUS_SUCCESS ? 0 : 1;
}
"""

pytestmark = pytest.mark.slow


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample, where the role's build leaves llama-server: <build_dir>/build/bin/llama-server."""
    nvcc = shutil.which("nvcc")
    assert nvcc, (
        "nvcc is not on PATH: this test needs the CUDA 13 toolkit (/usr/local/bin/nvcc on CI machines)"
    )
    cublas = cublas_root()
    build_dir = tmp_path_factory.mktemp("gpu-build")
    (build_dir / "sample.cu").write_text(SAMPLE)
    binary = build_dir / "build" / "bin" / "llama-server"
    binary.parent.mkdir(parents=True)
    subprocess.run(
        [nvcc, "-arch=sm_90", "-o", str(binary), str(build_dir / "sample.cu"), f"-I{cublas}/include",
         f"-L{cublas}/lib", "-l:libcublas.so.13", "-cudart", "shared",
         "-Xlinker", "-rpath", "-Xlinker", "$ORIGIN/../lib"],
        check=True,
    )  # fmt: skip
    return build_dir


@pytest.fixture(scope="module")
def node() -> Iterator[str]:
    """A container of the node image: no CUDA toolkit, no driver. Reached with `docker exec` only."""
    assert docker("info").returncode == 0, "dockerd is not answering: `bash tests/infra/dockerd.sh start`"
    assert docker("image", "inspect", IMAGE).returncode == 0, f"no {IMAGE}: `bash tests/infra/node-image.sh`"
    docker("rm", "-f", NODE)
    started = docker("run", "-d", "--name", NODE, "--network", "none", IMAGE, "sleep", "infinity")
    assert started.returncode == 0, started.stderr
    yield NODE
    docker("rm", "-f", NODE)


def play(
    tasks: str, version: str, build_dir: Path, cache: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return run_playbook(
        ROOT / "tests/infra/gpu-bundle.yml",
        "-e", f"gpu_bundle_tasks={tasks}", "-e", f"gpu_bundle_version={version}",
        "-e", f"gpu_bundle_build_dir={build_dir}", "-e", f"gpu_bundle_cache={cache}",
        "-e", f"gpu_bundle_node={NODE}",
        "-e", json.dumps({"llamacpp_build_library_path": [str(cublas_root() / "lib")]}), *extra,
        timeout=900,
    )  # fmt: skip


def test_bundled_cuda_build_loads_on_a_node_without_cuda(sample: Path, node: str, tmp_path: Path) -> None:
    cache = tmp_path / "controller"
    recache = tmp_path / "recache"
    done = play("bundle", "bundled", sample, cache, "-e", f"gpu_bundle_recache={recache}")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    kind = cache / "llamacpp" / "builds" / "bundled-cuda-x86_64-avx2-90"
    assert sorted(p.name for p in (kind / "lib").iterdir()) == [
        "libcublas.so.13",
        "libcublasLt.so.13",
        "libcudart.so.13",
    ]
    assert (kind / "llama-server").is_file()
    installed = INSTALLED.format(version="bundled")
    ldd = docker("exec", node, "ldd", installed)
    assert ldd.returncode == 0 and "not found" not in ldd.stdout, ldd.stdout
    assert "/opt/animaflow/llamacpp/bundled/bin/../lib/libcublasLt.so.13" in ldd.stdout
    # The node really has no CUDA of its own: only the bundle serves it.
    assert docker("exec", node, "sh", "-c", "ldconfig -p | grep -c cuda").stdout.strip() == "0"
    ran = docker("exec", node, installed, "--version")
    assert (ran.returncode, ran.stdout) == (0, "cuda-sample 1\n")
    # A node that has the build gives back the same tree (cache_installed.yml).
    again = recache / "llama-server"
    assert sorted(str(p.relative_to(again.parent)) for p in again.parent.rglob("*") if p.is_file()) == sorted(
        str(p.relative_to(kind)) for p in kind.rglob("*") if p.is_file()
    )
    # Idempotent: the same run again changes nothing on the build node nor on the node.
    rerun = play("bundle", "bundled", sample, cache)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    recap = [line.split() for line in rerun.stdout.splitlines() if "changed=" in line]
    assert len(recap) == 2 and all("changed=0" in line for line in recap), rerun.stdout[-4000:]


def test_unbundled_copy_is_refused_naming_the_missing_libraries(
    sample: Path, node: str, tmp_path: Path
) -> None:
    # The cache as the role left it before bundling: the binary alone.
    kind = tmp_path / "controller" / "llamacpp" / "builds" / "alone-cuda-x86_64-avx2-90"
    kind.mkdir(parents=True)
    shutil.copy2(sample / "build" / "bin" / "llama-server", kind / "llama-server")
    done = play("none", "alone", sample, tmp_path / "controller")
    assert done.returncode != 0
    assert "Check every shared library of llama-server is found on this node" in done.stdout
    assert (
        f"{INSTALLED.format(version='alone')} cannot load libcublas.so.13, libcudart.so.13 on this node (ldd: not found)"
        in " ".join(done.stdout.split())
    ), done.stdout[-4000:]
    # What the role's check spares the service: copied alone, the binary does not even start there.
    ran = docker("exec", node, INSTALLED.format(version="alone"), "--version")
    assert ran.returncode == 127 and "libcublas.so.13: cannot open shared object file" in ran.stderr, ran
