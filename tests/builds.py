"""The llama.cpp builds every llama-server test shares, built once per run beside the tests.

`make test` (tests/infra/run-tests.sh) starts tests/infra/llamacpp-builds.sh before pytest, with
ANIMAFLOW_BUILDS_DIR naming where it writes `<version>.done` as each release lands in the controller
cache, its log, and `rc` when it ends. A test that needs llama-server calls the `llamacpp_builds`
fixture with the releases it needs (none named: all of them); it waits for them, and fails with the
log's tail if the builds failed. Outside `make test` nothing is pending and it returns at once (a
test then builds what it needs itself, as before).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# Two releases built cold on 2 busy cores; normally done within 15 minutes.
WAIT_S = 3600


def _wait(versions: tuple[str, ...]) -> None:
    if not os.environ.get("ANIMAFLOW_BUILDS_DIR"):
        return
    builds = Path(os.environ["ANIMAFLOW_BUILDS_DIR"])
    deadline = time.monotonic() + WAIT_S
    while True:
        status = (builds / "rc").read_text().strip() if (builds / "rc").is_file() else None
        if versions and all((builds / f"{version}.done").is_file() for version in versions):
            return
        if status == "0" and not versions:
            return
        if status is not None:
            log = builds / "log"
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.is_file() else ""
            pytest.fail(
                f"the llama.cpp builds ended (exit {status}) without {versions or 'all'}; {log}:\n{tail}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"the llama.cpp builds did not finish within {WAIT_S} s (log: {builds / 'log'})")
        time.sleep(1)


@pytest.fixture(scope="session")
def llamacpp_builds() -> Callable[..., None]:
    """llamacpp_builds("b11312") waits for that release's build; llamacpp_builds() for all of them."""

    def wait(*versions: str) -> None:
        _wait(versions)

    return wait
