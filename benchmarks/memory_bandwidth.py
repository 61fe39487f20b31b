#!/usr/bin/env python3
"""Which standard-library call measures RAM read bandwidth, with how many threads (issue 13, item 3).

The decode bound divides by the read bandwidth of the memory the weights live in, read by as many
threads as the server runs. Candidates, each timed at 1 .. N threads over buffers far larger than
the L3 cache (each thread its own slice, best of 5 rounds, the window from the first thread's start
to the last one's end):
- memchr: libc memchr through ctypes, for a byte the buffer does not hold (reads only; ctypes
  releases the GIL, so threads read at once) - the one llm_bench_host uses;
- find: bytearray.find of an absent byte (memchr too, but holding the GIL);
- crc32 / adler32: zlib checksums (release the GIL, but compute-bound);
- count: bytearray.count of a byte (a byte loop, GIL held);
- sha1 / blake2b: hashlib (release the GIL, compute-bound);
- copy x2: the old method, one memoryview copy counted as read plus write.
Then the module's own measurement (measure_read_bandwidth) at 1 .. N threads. Takes about 20 s.

    .venv/bin/python benchmarks/memory_bandwidth.py [--threads 1,2] [--buffer-mib 256]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".collections"))  # the venv's .pth does this; plain python needs it

from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_host import (  # noqa: E402
    measure_read_bandwidth,
)

REPEATS = 5
ABSENT = 0x5A

libc = ctypes.CDLL(None)
libc.memchr.restype = ctypes.c_void_p
libc.memchr.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)


def kernels() -> dict[str, Callable[[bytearray], Callable[[], object]]]:
    def memchr(buffer: bytearray) -> Callable[[], object]:
        address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
        return lambda: libc.memchr(address, ABSENT, len(buffer))

    view = memoryview
    return {
        "memchr": memchr,
        "find": lambda buffer: lambda: buffer.find(bytes([ABSENT])),
        "crc32": lambda buffer: lambda: zlib.crc32(view(buffer)),
        "adler32": lambda buffer: lambda: zlib.adler32(view(buffer)),
        "count": lambda buffer: lambda: buffer.count(bytes([ABSENT])),
        "sha1": lambda buffer: lambda: hashlib.sha1(view(buffer)).digest(),
        "blake2b": lambda buffer: lambda: hashlib.blake2b(view(buffer)).digest(),
    }


def timed(prepare: Callable[[bytearray], Callable[[], object]], threads: int, slice_bytes: int) -> float:
    """Best of REPEATS rounds, in GB/s: every thread scans its own buffer once per round."""
    buffers = [bytearray(b"\xa5") * slice_bytes for _ in range(threads)]
    scans = [prepare(buffer) for buffer in buffers]
    best = 0.0
    for _ in range(REPEATS):
        barrier = threading.Barrier(threads)
        spans: list[tuple[float, float]] = []

        def run(
            scan: Callable[[], object], barrier: threading.Barrier = barrier, spans: list = spans
        ) -> None:
            barrier.wait()
            start = time.perf_counter()
            scan()
            spans.append((start, time.perf_counter()))

        workers = [threading.Thread(target=run, args=(scan,)) for scan in scans]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = max(end for _, end in spans) - min(start for start, _ in spans)
        best = max(best, threads * slice_bytes / seconds / 1e9)
    return best


def copy_twice(size: int) -> float:
    source, target = bytearray(b"\xa5") * size, bytearray(size)
    view = memoryview(target)
    view[:] = source
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        view[:] = source
        best = min(best, time.perf_counter() - start)
    return 2 * size / best / 1e9


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}")
    parser.add_argument("--buffer-mib", type=int, default=256)
    args = parser.parse_args()
    counts = sorted({int(part) for part in args.threads.split(",") if part.strip()})
    size = args.buffer_mib << 20
    print(f"uptime: {uptime()}")
    print(f"buffers: {args.buffer_mib} MiB in all, split over the threads; best of {REPEATS} rounds; GB/s")
    print(f"{'candidate':<10}" + "".join(f"{f'{count} thr':>10}" for count in counts))
    print(f"{'copy x2':<10}{copy_twice(size):>10.2f}" + "".join(f"{'-':>10}" for _ in counts[1:]))
    for name, prepare in kernels().items():
        # The compute-bound ones would take seconds on the whole buffer: an eighth is plenty.
        total = size // 8 if name in ("count", "sha1", "blake2b") else size
        print(f"{name:<10}" + "".join(f"{timed(prepare, count, total // count):>10.2f}" for count in counts))
    print("llm_bench_host.measure_read_bandwidth (what the benchmark records):")
    for count in counts:
        result = measure_read_bandwidth(count, buffer_mib=args.buffer_mib, threads_reason="--threads")
        print(f"  {count} thread(s): {result['gbps']:.2f} GB/s (rounds {result['rounds_gbps']})")
    print(f"uptime: {uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
