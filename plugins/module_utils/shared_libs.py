# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Which shared libraries a GPU build must carry with it, decided from `ldd` output.

A llama-server built for CUDA or ROCm links the GPU runtime (cudart, cuBLAS, rocBLAS, HIP...)
dynamically. Built once per node kind and copied to the rest, it only starts where those libraries
are found, so the build carries them in lib/ beside bin/ (the binary's RUNPATH is $ORIGIN/../lib).
Three kinds of library, and the rule for each:

- system: the C and C++ runtime every Linux node has (glibc, libstdc++, libgcc_s). Never bundled.
- driver: user-space parts of the GPU driver (libcuda, libnvidia-*, the Vulkan loader). They must
  match the node's kernel driver, so they always come from the node, never from the builder.
- bundle: everything else (libcudart, libcublas, libcublasLt, librocblas, libamdhip64, libgomp...).

Standard library only: runs on minimal nodes inside the module's payload.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

# Sonames of glibc, libstdc++ and libgcc_s: present on every node the roles accept.
SYSTEM_NAMES = re.compile(
    r"^(linux-vdso|linux-gate|ld-linux[-\w.]*|ld64|libc|libm|libmvec|libpthread|libdl|librt|libresolv"
    r"|libutil|libanl|libnsl|libcrypt|libstdc\+\+|libgcc_s)\.so(\.[0-9]+)*$"
)
# Libraries that belong to the node's GPU driver; a copy from the builder could mismatch its kernel module.
DRIVER_NAMES = re.compile(
    r"^(libcuda|libnvidia-[\w.-]+|libnvcuvid|libcudadebugger|libvulkan)\.so(\.[0-9]+)*$"
)

# `ldd` lines: "name => path (addr)", "name => not found", "/abs/ld-linux.so.2 (addr)", "linux-vdso.so.1 (addr)".
_RESOLVED = re.compile(r"^\s*(?P<name>\S+)\s+=>\s+(?P<path>\S+)\s+\(0x[0-9a-fA-F]+\)\s*$")
_NOT_FOUND = re.compile(r"^\s*(?P<name>\S+)\s+=>\s+not found\s*$")
_BARE = re.compile(r"^\s*(?P<name>\S+)\s+\(0x[0-9a-fA-F]+\)\s*$")


@dataclass(frozen=True)
class Library:
    """One library the dynamic loader must find; path is None when ldd says "not found"."""

    name: str
    path: str | None

    @property
    def kind(self) -> str:
        return classify(self.name)


def classify(name: str) -> str:
    """system, driver or bundle (see the module docstring)."""
    base = os.path.basename(name)
    if SYSTEM_NAMES.match(base):
        return "system"
    if DRIVER_NAMES.match(base):
        return "driver"
    return "bundle"


def parse_ldd(text: str) -> list[Library]:
    """Every library ldd lists, in its order; lines it does not recognise (warnings) are skipped.

    ldd of a static binary prints "statically linked" or "not a dynamic executable": no libraries.
    """
    libraries: list[Library] = []
    for line in text.splitlines():
        if match := _NOT_FOUND.match(line):
            libraries.append(Library(match["name"], None))
        elif match := _RESOLVED.match(line):
            libraries.append(Library(match["name"], match["path"]))
        elif match := _BARE.match(line):
            # The vDSO has no file; the interpreter is listed by its absolute path.
            name = match["name"]
            libraries.append(Library(os.path.basename(name), name if name.startswith("/") else None))
    return libraries


def to_bundle(libraries: list[Library]) -> list[Library]:
    """The libraries to copy into lib/, once each (ldd lists each once, but be safe)."""
    seen: set[str] = set()
    chosen = []
    for library in libraries:
        if library.kind == "bundle" and library.name not in seen:
            seen.add(library.name)
            chosen.append(library)
    return chosen


def missing(libraries: list[Library]) -> list[Library]:
    """Libraries ldd could not find, except the vDSO (which never has a file)."""
    return [
        lib for lib in libraries if lib.path is None and not lib.name.startswith(("linux-vdso", "linux-gate"))
    ]


def outside(libraries: list[Library], lib_dir: str) -> list[Library]:
    """Bundled libraries that resolve somewhere other than lib_dir: the bundle does not serve them."""
    root = os.path.realpath(lib_dir)
    return [
        lib
        for lib in libraries
        if lib.kind == "bundle"
        and lib.path is not None
        and os.path.dirname(os.path.realpath(lib.path)) != root
    ]


def missing_message(binary: str, libraries: list[Library]) -> str | None:
    """Why the binary cannot start on this node, naming each missing library and the fix; None if all resolve."""
    absent = missing(libraries)
    if not absent:
        return None
    parts = []
    driver = [lib.name for lib in absent if lib.kind == "driver"]
    other = [lib.name for lib in absent if lib.kind != "driver"]
    if other:
        parts.append(
            f"{binary} cannot load {', '.join(other)} on this node (ldd: not found). The build was copied"
            " without the GPU runtime libraries it links: they belong in lib/ beside bin/. Fix: remove"
            " this kind's directory from the controller cache (llamacpp/builds/<kind>) and re-run, so the"
            " build is redone and bundles them."
        )
    if driver:
        parts.append(
            f"{', '.join(driver)} {'comes' if len(driver) == 1 else 'come'} from the GPU driver, which"
            " this node lacks (or whose libraries are not in the loader's path): driver libraries are never"
            " copied from the builder. Fix: install the node's GPU driver (NVIDIA: the driver package"
            " that provides libcuda.so.1), or set llamacpp_accelerator=cpu for this node."
        )
    return " ".join(parts)
