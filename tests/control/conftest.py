"""Fixtures for the control plane tests: a temporary farm of local-connection hosts, an app on a temporary
data dir, its admin token, and helpers to wait for runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".collections"
STANDIN_PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"

# The recommendation imports the collection's module_utils; the venv's .pth does this outside pytest.
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from animaflow_control.app import create_app  # noqa: E402
from animaflow_control.settings import Settings  # noqa: E402

INVENTORY = """\
farm:
  children:
    render:
      hosts:
        local: {}
        local2: {}
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    animaflow_studio: {name: Test Studio, artists: 3, concurrent_users: 2, workload: interactive}
"""


@pytest.fixture
def inventory_file(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(INVENTORY, encoding="utf-8")
    return path


@pytest.fixture
def settings(tmp_path: Path, inventory_file: Path) -> Settings:
    """The real playbooks (facts, status, ...) against the temporary farm."""
    return Settings(inventory=inventory_file, state_dir=tmp_path / "state", playbook_dir=ROOT / "playbooks")


@pytest.fixture
def standin_settings(settings: Settings) -> Settings:
    """Stand-in playbooks that take as long as a test needs (locks, cancel, shutdown)."""
    return settings.model_copy(update={"playbook_dir": STANDIN_PLAYBOOKS})


@pytest.fixture
def app_client() -> Callable[[Settings], Any]:
    @contextmanager
    def open_client(settings: Settings) -> Iterator[TestClient]:
        # Addressed as a loopback client addresses the server: the Host check on changes allows it.
        with TestClient(create_app(settings), base_url="http://127.0.0.1:8800") as client:
            yield client

    return open_client


@pytest.fixture
def client(settings: Settings, app_client: Callable[[Settings], Any]) -> Iterator[TestClient]:
    with app_client(settings) as client:
        yield client


def bearer(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.admin_token_file.read_text().strip()}"}


@pytest.fixture
def admin_of() -> Callable[[Settings], dict[str, str]]:
    """Headers with the admin token of the app on these settings (for tests that start apps themselves)."""
    return bearer


@pytest.fixture
def admin(settings: Settings, client: TestClient) -> dict[str, str]:
    """Headers with the admin token the first start wrote (the client fixture started the app)."""
    return bearer(settings)


@pytest.fixture
def token_for(client: TestClient, admin: dict[str, str]) -> Callable[[str], dict[str, str]]:
    def create(role: str) -> dict[str, str]:
        created = client.post("/api/tokens", json={"name": f"test {role}", "role": role}, headers=admin)
        assert created.status_code == 201, created.text
        return {"Authorization": f"Bearer {created.json()['token']}"}

    return create


def wait_for_run(
    client: TestClient, run_id: str, headers: dict[str, str], until: str | None = None, timeout: float = 120
) -> dict:
    """Polls the run until it reaches `until`, or any finished state when `until` is None."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.get(f"/api/runs/{run_id}", headers=headers).json()
        if run["state"] == until or (until is None and run["state"] not in ("queued", "running", "stopping")):
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['state']} after {timeout} s"
        time.sleep(0.1)


@pytest.fixture
def wait_run() -> Callable[..., dict]:
    return wait_for_run


@pytest.fixture
def standin_client(standin_settings: Settings, app_client: Callable[[Settings], Any]) -> Iterator[TestClient]:
    with app_client(standin_settings) as client:
        yield client


@pytest.fixture
def standin_admin(standin_settings: Settings, standin_client: TestClient) -> dict[str, str]:
    return bearer(standin_settings)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server_processes() -> list[subprocess.Popen]:
    """The `animaflow serve` processes live_server started (for tests that signal them)."""
    return []


@pytest.fixture
def live_server(
    tmp_path: Path, inventory_file: Path, server_processes: list[subprocess.Popen]
) -> Iterator[Callable[..., tuple[str, Path]]]:
    """Starts `animaflow serve` on a free loopback port with the given playbook dir (and any more
    ANIMAFLOW_* settings as keywords); returns (base URL, state dir). Every start in one test shares the
    state dir, as a restart does. TestClient buffers a streamed body until it ends, so live streaming
    needs a real server."""

    def start(playbook_dir: Path, **settings: str) -> tuple[str, Path]:
        state, port = tmp_path / "state", free_port()
        env = {
            **os.environ,
            "ANIMAFLOW_INVENTORY": str(inventory_file),
            "ANIMAFLOW_STATE_DIR": str(state),
            "ANIMAFLOW_PLAYBOOK_DIR": str(playbook_dir),
            "ANIMAFLOW_PORT": str(port),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(COLLECTIONS), os.environ.get("PYTHONPATH")])),
            **{f"ANIMAFLOW_{name.upper()}": value for name, value in settings.items()},
        }
        log = tmp_path / f"server-{len(server_processes)}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "animaflow_control.cli", "serve"],
            env=env,
            cwd=tmp_path,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        server_processes.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    return base, state
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)

    yield start
    for process in server_processes:
        process.terminate()
        process.wait(timeout=60)
