"""Build llama-server from a mirror source tarball, for tests that need the real server on the host when
the llamacpp role's controller cache has no build yet (test_bench_real_server, the Ollama stand-in)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The llamacpp role's portable build (static, no OpenSSL/OpenMP, no web UI download), with the x86-64-v3
# instructions every farm CPU of the last decade has, so the binary also runs in the node containers.
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DGGML_OPENMP=OFF",
    "-DGGML_AVX=ON",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
    "-DGGML_BMI2=ON",
]


def runs(binary: Path) -> bool:
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, timeout=30, check=False)
    except OSError:
        return False
    return done.returncode == 0


def build_llama_server(tarball: Path, workdir: Path) -> Path:
    """Unpacks the tarball under workdir and builds only llama-server; a working earlier build is reused."""
    binary = workdir / "build" / "bin" / "llama-server"
    if runs(binary):
        return binary
    source = workdir / "src"
    if not (source / "CMakeLists.txt").exists():
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        with tarfile.open(tarball) as archive:
            top = archive.getnames()[0].split("/", 1)[0]
            archive.extractall(workdir, filter="data")
        (workdir / top).rename(source)
    subprocess.run(["cmake", "-S", str(source), "-B", str(workdir / "build"), *CMAKE_FLAGS], check=True)
    jobs = str(os.cpu_count() or 2)
    subprocess.run(
        ["cmake", "--build", str(workdir / "build"), "--target", "llama-server", "-j", jobs], check=True
    )
    return binary


def known_versions() -> list[str]:
    """The llama.cpp releases the test mirror carries (tests/infra/prepare-mirror.py), oldest first. The
    controller cache also holds test-only builds (molecule/llamacpp's b-broken, which refuses to serve)
    that must never be picked."""
    spec = importlib.util.spec_from_file_location("prepare_mirror", REPO / "tests/infra/prepare-mirror.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [tag for tag, _commit in module.VENDORED.values()]


def mirror_tarball(version: str) -> Path:
    """Where prepare-mirror.py puts a release's source in the mirror."""
    return (
        Path(os.environ.get("ANIMAFLOW_MIRROR", REPO / ".cache" / "mirror"))
        / "llamacpp"
        / f"llama.cpp-{version}.tar.gz"
    )
