"""The slow path an IT admin clicks: install and start llama.cpp on a real systemd container node through
the API (real ansible-runner, real playbooks, real llama-server), see each action's own status report on
/api/nodes (no Status run between), and ask the node a question through the OpenAI API. Needs dockerd and the node image (make test provides both)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from animaflow_control.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NODE = "animaflow-control-node"
ADDRESS = "127.0.0.51"  # its own loopback address: clear of the demo node and the Molecule scenarios
IMAGE = "animaflow/node:bookworm"
LLAMACPP_DEFAULT = yaml.safe_load((ROOT / "roles/llamacpp/defaults/main.yml").read_text())["llamacpp_version"]

pytestmark = pytest.mark.slow


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def container_node(llamacpp_builds: Callable[..., None]) -> Iterator[str]:
    if docker("info").returncode != 0 or docker("image", "inspect", IMAGE).returncode != 0:
        pytest.skip("needs dockerd and the node image: run it through `make test`")
    llamacpp_builds(LLAMACPP_DEFAULT)  # installs the role's default release: copied, not built here
    docker("rm", "-f", NODE)  # a fresh node: one left by an interrupted run has llama.cpp on it
    started = subprocess.run(
        ["bash", ROOT / "tests/infra/node-container.sh", "up", NODE, "control-test"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    yield NODE
    docker("rm", "-f", NODE)


@pytest.fixture
def node_settings(tmp_path: Path, container_node: str) -> Settings:
    """The local inventory's studio, mirror and models, with the tiny model and absolute paths."""
    farm = yaml.safe_load((ROOT / "inventories/local/group_vars/farm.yml").read_text())
    farm.update(
        animaflow_artifact_mirror=str(ROOT / ".cache/mirror"),
        animaflow_cache_dir=str(ROOT / ".cache/controller"),
        animaflow_model="tiny",
    )
    inventory = {
        "farm": {
            "hosts": {
                container_node: {
                    "ansible_connection": "community.docker.docker",
                    "animaflow_bind_address": ADDRESS,
                }
            },
            "vars": farm,
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return Settings(inventory=path, state_dir=tmp_path / "state", playbook_dir=ROOT / "playbooks")


def test_install_and_start_report_the_node_status_on_a_container_node(
    node_settings: Settings,
    app_client: Callable[[Settings], Any],
    admin_of: Callable[[Settings], dict[str, str]],
    wait_run: Callable[..., dict],
) -> None:
    with app_client(node_settings) as client:
        admin = admin_of(node_settings)

        def run(action: str, timeout: float) -> None:
            body = {"action": action, "backend": "llamacpp", "hosts": [NODE]}
            created = client.post("/api/runs", json=body, headers=admin)
            assert created.status_code == 202, created.text
            finished = wait_run(client, created.json()["id"], admin, timeout=timeout)
            assert finished["state"] == "successful", f"{action}: {finished}"

        def status() -> dict:
            nodes = client.get("/api/nodes", headers=admin).json()["nodes"]
            return next(n for n in nodes if n["name"] == NODE)["status"]

        # A cold controller cache builds llama-server (minutes); a warm one copies the binary. Each
        # action writes the node's status at its end: the grid needs no separate Status run.
        run("install", timeout=1500)
        installed = status()
        assert installed["backends"]["llamacpp"]["installed_versions"] == [LLAMACPP_DEFAULT]
        assert installed["backends"]["llamacpp"]["running"] is False and installed["active_backend"] is None
        run("start", timeout=300)

        node_status = status()
        assert node_status["collected_at"] > installed["collected_at"]
        assert node_status["active_backend"] == "llamacpp"
        state = node_status["backends"]["llamacpp"]
        assert state["running"] is True and state["healthy"] is True
        assert state["active_version"] in state["installed_versions"]
        assert state["endpoint"] == f"http://{ADDRESS}:8000/v1"

    key = yaml.safe_load((ROOT / "inventories/local/group_vars/farm.yml").read_text())["animaflow_api_key"]
    reply = httpx.post(
        f"http://{ADDRESS}:8000/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] == 8
