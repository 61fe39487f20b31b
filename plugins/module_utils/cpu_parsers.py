# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Parsers for /proc/cpuinfo and /proc/meminfo: the CPU facts a backend needs.

CPU backends (llama.cpp, Ollama) size their thread pools by physical cores, not hyper-threads,
and pick kernels by AVX2/AVX-512; RAM decides which models fit without a GPU.
Standard library only: shipped to minimal Debian nodes inside the module's payload.
"""

from __future__ import annotations

import re
from typing import Any


def _blocks(text: str) -> list[dict[str, str]]:
    """One dict per processor: /proc/cpuinfo separates processors with a blank line."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, separator, value = line.partition(":")
        if separator:
            current[key.strip().lower()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def parse_cpuinfo(text: str, architecture: str | None = None) -> dict[str, Any]:
    """model, architecture, sockets, physical_cores, logical_cpus, avx, avx2, avx512f.

    architecture is passed in (platform.machine() on the node) because x86 cpuinfo does not
    name it.
    """
    processors = [block for block in _blocks(text) if "processor" in block]
    # aarch64 puts a summary block without 'processor' at the end; its keys still help below.
    everything = _blocks(text)
    logical = len(processors)

    model = None
    for block in everything:
        model = block.get("model name") or block.get("cpu model") or block.get("hardware")
        if model:
            break

    flags: set[str] = set()
    for block in processors[:1] or everything[:1]:
        # x86 calls them flags, arm64 Features.
        flags = set((block.get("flags") or block.get("features") or "").split())

    sockets_ids = {block["physical id"] for block in processors if "physical id" in block}
    sockets = len(sockets_ids) or 1
    core_pairs = {
        (block["physical id"], block["core id"])
        for block in processors
        if "physical id" in block and "core id" in block
    }
    if core_pairs:
        physical = len(core_pairs)
    else:
        # Some hypervisors hide the topology ids but keep 'cpu cores' (cores per socket).
        cores_per_socket = next(
            (int(block["cpu cores"]) for block in processors if block.get("cpu cores", "").isdigit()), None
        )
        physical = cores_per_socket * sockets if cores_per_socket else logical

    return {
        "model": model,
        "architecture": architecture,
        "sockets": sockets,
        "physical_cores": physical,
        "logical_cpus": logical,
        "avx": "avx" in flags,
        "avx2": "avx2" in flags,
        "avx512f": "avx512f" in flags,
    }


def parse_meminfo(text: str) -> dict[str, int | None]:
    """MemTotal and MemAvailable in MiB (the kernel prints kB, meaning KiB)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        match = re.match(r"^(MemTotal|MemAvailable):\s+(\d+)\s*kB", line)
        if match:
            values[match.group(1)] = int(match.group(2)) // 1024
    return {
        "memory_total_mib": values.get("MemTotal"),
        "memory_available_mib": values.get("MemAvailable"),
    }
