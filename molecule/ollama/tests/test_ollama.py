"""Ollama (stand-in archive) installed, configured and serving on each CPU node, checked from the host."""

from __future__ import annotations

import json
import urllib.request

import pytest

VERSION = "0.32.15-standin"


@pytest.fixture
def endpoint(host) -> str:
    variables = host.ansible.get_variables()
    return f"http://{variables['animaflow_bind_address']}:{variables.get('animaflow_serve_port', 8000)}"


def call(url: str, payload: dict | None = None) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def test_versioned_install_with_current_link(host):
    root = host.file(f"/opt/animaflow/ollama/{VERSION}")
    assert root.is_directory and root.user == "root"
    assert host.file(f"/opt/animaflow/ollama/{VERSION}/bin/ollama").mode == 0o755
    assert host.file(f"/opt/animaflow/ollama/{VERSION}/lib/ollama").is_directory
    assert host.file("/opt/animaflow/ollama/current").linked_to == f"/opt/animaflow/ollama/{VERSION}"
    marker = json.loads(host.file(f"/opt/animaflow/ollama/{VERSION}/.animaflow-installed").content_string)
    assert marker["archives"] == ["ollama-linux-amd64.tar.zst"]
    assert len(marker["artifact_sha256"]) == 64
    assert host.package("zstd").is_installed


def test_environment_file(host):
    env = host.file("/etc/animaflow/ollama.env")
    assert (env.user, env.group, env.mode) == ("root", "animaflow", 0o640)
    address = host.ansible.get_variables()["animaflow_bind_address"]
    text = env.content_string
    assert f'OLLAMA_HOST="{address}:8000"' in text
    assert 'OLLAMA_MODELS="/var/lib/animaflow/models/ollama"' in text
    assert 'OLLAMA_NUM_PARALLEL="2"' in text  # concurrent_users 2, plenty of RAM for the tiny model
    assert 'OLLAMA_CONTEXT_LENGTH="256"' in text  # the model's context
    assert 'OLLAMA_KEEP_ALIVE="30m"' in text
    assert "OLLAMA_FLASH_ATTENTION" not in text  # CPU node


def test_unit_runs_hardened_as_service_user(host):
    service = host.service("animaflow-ollama.service")
    assert service.is_running and service.is_enabled
    show = host.run(
        "systemctl show animaflow-ollama.service -p User -p ExecStart -p ProtectSystem -p PrivateDevices"
    )
    assert "User=animaflow" in show.stdout
    assert "/opt/animaflow/ollama/current/bin/ollama serve" in show.stdout
    assert "ProtectSystem=strict" in show.stdout and "PrivateDevices=yes" in show.stdout
    assert host.process.filter(user="animaflow", comm="llama-server")


def test_api_version_and_imported_model(endpoint):
    assert call(f"{endpoint}/api/version")["version"] == VERSION
    names = [m["name"] for m in call(f"{endpoint}/api/tags")["models"]]
    assert names == ["animaflow-tiny:latest"]
    assert [m["id"] for m in call(f"{endpoint}/v1/models")["data"]] == ["animaflow-tiny:latest"]


def test_chat_completion_through_v1(endpoint):
    answer = call(
        f"{endpoint}/v1/chat/completions",
        {
            "model": "animaflow-tiny",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 8,
            "ignore_eos": True,
        },
    )
    assert answer["choices"][0]["message"]["content"]
    assert answer["usage"]["completion_tokens"] == 8


def test_model_store_and_state(host):
    manifest = host.file(
        "/var/lib/animaflow/models/ollama/manifests/registry.ollama.ai/library/animaflow-tiny/latest"
    )
    assert manifest.exists
    assert host.file("/var/lib/animaflow/ollama/.ollama").is_directory  # HOME is writable for the service
    state = json.loads(host.file("/var/lib/animaflow/ollama/state.json").content_string)
    assert state["active_version"] == VERSION and state["model"] == "animaflow-tiny"
    assert state["endpoint"].endswith(":8000/v1")
