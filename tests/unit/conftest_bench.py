"""Fixtures for the benchmark tests: the scheduled SSE stand-in, started as its own process.

A separate process, not a thread: a server sharing the client's GIL would add its own scheduling
delays to what the client measures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "tests" / "standins" / "scheduled_sse_server.py"
# The loopback address test servers bind (machines shared by several test runs give each its own).
LOOPBACK = os.environ.get("ANIMAFLOW_TEST_LOOPBACK", "127.0.0.1")


def start_server(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start the stand-in with these command-line options; return it and its base URL."""
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--host", LOOPBACK, "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until bound; the stand-in prints nothing else
    if not line.startswith("listening "):
        process.kill()
        raise RuntimeError(f"scheduled server did not start: {line!r}")
    return process, line.split()[1]


@pytest.fixture
def sse_server() -> Iterator[Callable[..., str]]:
    """Factory: sse_server("--ttft-ms", "80", ...) -> base URL; every server stops after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        process, url = start_server(*args)
        started.append(process)
        return url

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)
