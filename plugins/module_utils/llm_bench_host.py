# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Measure the node's memory bandwidth, the number the single-stream decode bound divides by."""

from __future__ import annotations

import time

BANDWIDTH_METHOD = (
    "best of {repeats} timed copies of a {mib} MiB bytearray into another through memoryview slice "
    "assignment (one memcpy on one CPU thread), after an untimed copy that maps the pages; "
    "GB/s = 2 x bytes / seconds / 1e9, counting the read and the write as STREAM's Copy does. "
    "One thread rarely saturates every memory channel, so this is a lower bound for the host; "
    "it says nothing about GPU memory"
)


def measure_memory_bandwidth(buffer_mib: int = 256, repeats: int = 5) -> tuple[float, str]:
    """Return (GB/s, description of the method). The buffer must be far larger than the CPU caches."""
    size = buffer_mib << 20
    # Filled by repetition, not bytearray(size): calloc'd zero pages may all map one shared page,
    # and copying from it would measure the cache.
    source = bytearray(b"\xa5") * size
    target = bytearray(size)
    view = memoryview(target)
    view[:] = source
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        view[:] = source
        best = min(best, time.perf_counter() - start)
    view.release()
    return round(2 * size / best / 1e9, 2), BANDWIDTH_METHOD.format(repeats=repeats, mib=buffer_mib)
