# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The memory bandwidth the single-stream decode bound divides by, and where it came from.

Decode reads every weight once per token, so the bound is the read bandwidth of the memory the
weights live in, with as many readers as the server has:

- a CPU server (llama.cpp, Ollama on CPU): read-only scans of RAM with the server's thread count,
  measured here (source measured_cpu_read). A one-thread copy counted as read plus write, the old
  method, equalled a two-core read only by chance and moved 14 % between runs.
- a GPU server: the GPU's figure (gpu_bandwidth: the datasheet table, or a measured device copy
  when a torch interpreter is given), never the host's.
- a figure the caller gives (source given).

Standard library only: shipped to the node inside the llm_benchmark module's payload.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.animaflow.inference.plugins.module_utils.cpu_parsers import parse_cpuinfo
from ansible_collections.animaflow.inference.plugins.module_utils.gpu_bandwidth import (
    GPU_SPLITS,
    default_gpu_split,
    gpu_datasheet_bandwidth,
    measure_gpu_bandwidth,
    used_gpus,
)

BANDWIDTH_SOURCES = ("auto", "cpu", "gpu")
MIN_BUFFER_MIB = 256
# Each timed round lasts about this long, so that thread start-up skew stays a small part of it.
ROUND_TARGET_S = 0.1
MAX_PASSES = 64
_PATTERN = 0xA5  # what the buffers hold
_ABSENT = 0x5A  # what the scans look for: never found, so every byte is read


def l3_cache_bytes(cpu_root: str = "/sys/devices/system/cpu") -> int | None:
    """Total last-level (L3) cache of the node: each distinct cache instance counted once."""
    seen: dict[str, int] = {}
    try:
        cpus = [name for name in os.listdir(cpu_root) if name.startswith("cpu") and name[3:].isdigit()]
    except OSError:
        return None
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    for cpu in cpus:
        cache_dir = os.path.join(cpu_root, cpu, "cache")
        try:
            indexes = [name for name in os.listdir(cache_dir) if name.startswith("index")]
        except OSError:
            continue
        for index in indexes:
            path = os.path.join(cache_dir, index)
            try:
                with open(os.path.join(path, "level"), encoding="ascii") as handle:
                    if handle.read().strip() != "3":
                        continue
                with open(os.path.join(path, "size"), encoding="ascii") as handle:
                    size_text = handle.read().strip()
                with open(os.path.join(path, "shared_cpu_list"), encoding="ascii") as handle:
                    shared = handle.read().strip()
            except OSError:
                continue
            number, unit = size_text.rstrip("KMG"), size_text[-1:]
            if number.isdigit():
                seen[shared] = int(number) * units.get(unit, 1)
    return sum(seen.values()) or None


def _memory_available_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def default_threads(cpu_facts: dict[str, Any] | None = None) -> tuple[int, str]:
    """The node's physical cores (what llama.cpp and Ollama size their thread pools by) and how
    they were found."""
    cores = (cpu_facts or {}).get("physical_cores")
    if isinstance(cores, int) and cores > 0:
        return cores, "the node's physical cores (cpu facts), llama.cpp's and Ollama's default"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            cores = parse_cpuinfo(handle.read()).get("physical_cores")
    except OSError:
        cores = None
    if isinstance(cores, int) and cores > 0:
        return cores, "the node's physical cores (/proc/cpuinfo), llama.cpp's and Ollama's default"
    return max(1, os.cpu_count() or 1), "the node's logical CPUs (physical cores unknown)"


def _memchr_scanner() -> Callable[[bytearray], Callable[[], None]] | None:
    """libc memchr through ctypes: a read-only SIMD scan that releases the GIL, so N threads read
    at once. None where ctypes or memchr is missing."""
    try:
        import ctypes

        memchr = ctypes.CDLL(None).memchr
        memchr.restype = ctypes.c_void_p
        memchr.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
    except (ImportError, OSError, AttributeError):
        return None

    def prepare(buffer: bytearray) -> Callable[[], None]:
        address, length = ctypes.addressof(ctypes.c_char.from_buffer(buffer)), len(buffer)

        def scan() -> None:
            if memchr(address, _ABSENT, length) is not None:
                raise RuntimeError("the scan found a byte the buffer does not hold")

        return scan

    return prepare


def _find_scanner(buffer: bytearray) -> Callable[[], None]:
    """bytearray.find of an absent byte: memchr too, but it holds the GIL (one reader at a time)."""
    absent = bytes([_ABSENT])

    def scan() -> None:
        if buffer.find(absent) != -1:
            raise RuntimeError("the scan found a byte the buffer does not hold")

    return scan


def _timed_rounds(
    threads: int, slice_bytes: int, prepare: Callable[[bytearray], Callable[[], None]], repeats: int
) -> tuple[list[float], int]:
    """Each thread fills its own buffer (first touch puts its pages near it), then every round all
    threads scan their buffers `passes` times at once. Returns (GB/s of each round, passes)."""
    ready = threading.Barrier(threads + 1, timeout=120)
    go = threading.Barrier(threads + 1, timeout=120)
    done = threading.Barrier(threads + 1, timeout=120)
    spans: list[tuple[float, float]] = [(0.0, 0.0)] * threads
    plan = {"passes": 1, "rounds": repeats + 1, "error": None}

    def worker(slot: int) -> None:
        try:
            buffer = bytearray((_PATTERN,)) * slice_bytes
            scan = prepare(buffer)
            ready.wait()
            for _ in range(plan["rounds"]):
                go.wait()
                start = time.perf_counter()
                for _ in range(plan["passes"]):
                    scan()
                spans[slot] = (start, time.perf_counter())
                done.wait()
        except threading.BrokenBarrierError:
            return
        except BaseException as error:  # MemoryError, a failed scan: end the measurement
            plan["error"] = plan["error"] or error
            for barrier in (ready, go, done):
                barrier.abort()

    workers = [threading.Thread(target=worker, args=(slot,), daemon=True) for slot in range(threads)]
    for thread in workers:
        thread.start()
    figures: list[float] = []
    try:
        ready.wait()
        for round_number in range(plan["rounds"]):
            go.wait()
            done.wait()
            # The window from the first thread's start to the last one's end: skew counts against it.
            seconds = max(end for _, end in spans) - min(start for start, _ in spans)
            if round_number == 0:
                # Calibration round (one pass, not reported): size the passes to ~ROUND_TARGET_S.
                plan["passes"] = max(1, min(MAX_PASSES, math.ceil(ROUND_TARGET_S / max(seconds, 1e-6))))
                continue
            figures.append(threads * slice_bytes * plan["passes"] / seconds / 1e9)
    except threading.BrokenBarrierError:
        pass
    for thread in workers:
        thread.join(timeout=30)
    if plan["error"] is not None:
        raise RuntimeError(f"memory read measurement failed: {plan['error']}")
    if not figures:
        raise RuntimeError("memory read measurement failed: its threads did not finish within 120 s")
    return figures, int(plan["passes"])


def measure_read_bandwidth(
    threads: int | None = None,
    buffer_mib: int | None = None,
    repeats: int = 5,
    threads_reason: str = "given",
) -> dict[str, Any]:
    """Read-only memory bandwidth of `threads` threads reading at once: {gbps, source, method, ...}.

    The buffers total max(256 MiB, 4 x the L3 cache), at most a quarter of the available memory.
    """
    if threads is None:
        threads, threads_reason = default_threads()
    threads = max(1, threads)
    l3 = l3_cache_bytes()
    if buffer_mib is None:
        buffer_mib = max(MIN_BUFFER_MIB, 4 * (l3 or 0) >> 20)
        available = _memory_available_bytes()
        if available:
            buffer_mib = max(16, min(buffer_mib, (available // 4) >> 20))
    prepare = _memchr_scanner()
    kernel = "libc memchr through ctypes (releases the GIL)"
    readers = threads
    if prepare is None:
        prepare, readers = _find_scanner, 1
        kernel = "bytearray.find (memchr holding the GIL: ctypes is missing, so one reader, a lower bound)"
    slice_bytes = max(1 << 20, (buffer_mib << 20) // readers)
    figures, passes = _timed_rounds(readers, slice_bytes, prepare, repeats)
    best = max(figures)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    method = (
        f"read-only: {readers} thread(s) ({threads_reason}; {cpus} CPUs available to the benchmark) each "
        f"scanned its own {slice_bytes >> 20} MiB buffer ({readers * slice_bytes >> 20} MiB in all, "
        f"L3 {'unknown' if l3 is None else f'{l3 >> 20} MiB'}), filled by that thread, for a byte it does "
        f"not hold with {kernel}, {passes} passes per round; GB/s = bytes scanned / (last thread's end - "
        f"first thread's start), best of {len(figures)} rounds (all: "
        f"{', '.join(f'{figure:.1f}' for figure in figures)}); nothing is written while timed"
    )
    return {
        "gbps": round(best, 2),
        "source": "measured_cpu_read",
        "method": method,
        "threads": readers,
        "buffer_mib": readers * slice_bytes >> 20,
        "rounds_gbps": [round(figure, 2) for figure in figures],
    }


def memory_bandwidth(
    source: str = "auto",
    given_gbps: float | None = None,
    threads: int | None = None,
    cpu_facts: dict[str, Any] | None = None,
    gpu_facts: dict[str, Any] | None = None,
    gpus_used: int | None = None,
    gpu_split: str | None = None,
    gpu_python: str | None = None,
    backend: str | None = None,
) -> dict[str, Any]:
    """The bandwidth the decode bound uses: {gbps, source, method, ...}; gbps None with the reason
    in method when none could be had (a GPU the table does not know: never the host's figure).

    source: auto (gpu when the GPU facts show a usable GPU, else cpu), cpu or gpu; a given figure
    wins over all of them. gpu_split defaults by backend (layer for llama.cpp and Ollama).
    """
    if source not in BANDWIDTH_SOURCES:
        raise ValueError(f"memory_bandwidth_source must be one of {', '.join(BANDWIDTH_SOURCES)}")
    gpu_split = gpu_split or default_gpu_split(backend)
    if gpu_split not in GPU_SPLITS:
        raise ValueError(f"gpu_split must be one of {', '.join(GPU_SPLITS)}")
    if given_gbps:
        return {
            "gbps": given_gbps,
            "source": "given",
            "method": "given by the caller (memory_bandwidth_gbps)",
        }
    if source == "auto":
        source = "gpu" if used_gpus(gpu_facts)[0] else "cpu"
    if source == "cpu":
        count, reason = (threads, "the server's threads") if threads else default_threads(cpu_facts)
        try:
            return measure_read_bandwidth(count, threads_reason=reason)
        except RuntimeError as error:  # no bound rather than no benchmark
            return {"gbps": None, "source": None, "method": str(error)}
    datasheet = gpu_datasheet_bandwidth(gpu_facts, gpus_used, gpu_split)
    if gpu_python:
        if not os.path.exists(gpu_python):
            return {
                **datasheet,
                "method": f"{datasheet['method']} (no GPU probe: {gpu_python} does not exist)",
            }
        measured = measure_gpu_bandwidth(gpu_python, datasheet.get("gpus_used") or 1, gpu_split)
        if measured["gbps"]:
            if datasheet["gbps"]:
                measured["datasheet_gbps"] = datasheet["gbps"]
            return measured
        return {**datasheet, "method": f"{datasheet['method']} ({measured['method']})"}
    return datasheet
