"""Verify llama.cpp on the two molecule nodes: from the host through the OpenAI API (httpx) and inside
each node (testinfra). Runs after converge (b9976) and again after side_effect.yml (b11312)."""

import json
import os
import re
from pathlib import Path

import httpx
import pytest

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
API_KEY = "molecule-llamacpp-key"
ADDRESSES = {"llamacpp-node-1": "127.0.0.11", "llamacpp-node-2": "127.0.0.12"}
# Each node serves the model its own variables name (molecule.yml host_vars).
MODELS = {
    "llamacpp-node-1": ("tiny", "animaflow-tiny.gguf"),
    "llamacpp-node-2": ("tiny-b", "animaflow-tiny-b.gguf"),
}
EXPECTED = "b11312" if (EPHEMERAL / "lifecycle-done").exists() else "b9976"
UNIT = "animaflow-llamacpp.service"


def base_url(host) -> str:
    return f"http://{ADDRESSES[host.backend.get_hostname()]}:8000"


def model(host) -> str:
    return MODELS[host.backend.get_hostname()][0]


def state(host) -> dict:
    return json.loads(host.file("/var/lib/animaflow/llamacpp/state.json").content_string)


def test_chat_completion_through_the_openai_api(host):
    reply = httpx.post(
        f"{base_url(host)}/v1/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": model(host), "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == model(host)
    assert body["usage"]["completion_tokens"] == 8
    assert body["choices"][0]["message"]["content"]


def test_the_api_key_is_required(host):
    reply = httpx.post(
        f"{base_url(host)}/v1/chat/completions",
        json={"model": "tiny", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 1},
        timeout=30,
    )
    assert reply.status_code == 401


def test_each_node_serves_its_own_model(host):
    reply = httpx.get(
        f"{base_url(host)}/v1/models", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
    )
    assert [m["id"] for m in reply.json()["data"]] == [model(host)]
    # The file behind the alias is the node's own, verified against its sha256 on the controller.
    env = host.file("/etc/animaflow/llamacpp.env").content_string
    assert f'LLAMA_ARG_MODEL="/var/lib/animaflow/models/{MODELS[host.backend.get_hostname()][1]}"' in env
    # Before the lifecycle, only its own model reached each node (after it, node 1 keeps the model of
    # the upgrade that rolled back, beside the one it serves).
    if EXPECTED == "b9976":
        others = {f for _, f in MODELS.values()} - {MODELS[host.backend.get_hostname()][1]}
        assert not any(host.file(f"/var/lib/animaflow/models/{f}").exists for f in others)


def test_state_and_current_link_name_the_expected_version(host):
    current = state(host)
    assert current["active_version"] == EXPECTED
    assert EXPECTED in current["installed_versions"]
    assert current["model"] == model(host)
    assert current["endpoint"] == f"{base_url(host)}/v1"
    assert host.file("/opt/animaflow/llamacpp/current").linked_to == f"/opt/animaflow/llamacpp/{EXPECTED}"
    props = httpx.get(f"{base_url(host)}/props", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert EXPECTED.removeprefix("b-") in props.json()["build_info"]


def test_binary_was_built_once_and_copied(host):
    marker = json.loads(host.file(f"/opt/animaflow/llamacpp/{EXPECTED}/.animaflow-installed").content_string)
    assert marker["build_key"].startswith(f"{EXPECTED}-cpu-x86_64-")
    # At most node 1 built (a build installs cmake); node 2 always receives the binary from the
    # controller cache (with a warm cache nobody builds).
    if host.backend.get_hostname().endswith("-node-2"):
        assert not host.package("cmake").is_installed


def test_unit_is_hardened(host):
    show = host.check_output(
        f"systemctl show {UNIT} -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp"
        " -p PrivateDevices -p CapabilityBoundingSet -p MemoryDenyWriteExecute -p RestrictAddressFamilies"
    )
    props = dict(line.split("=", 1) for line in show.splitlines())
    assert props["User"] == "animaflow"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["PrivateDevices"] == "yes"
    assert props["MemoryDenyWriteExecute"] == "yes"
    assert props["CapabilityBoundingSet"] == ""
    assert set(props["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}


def test_security_exposure_is_at_most_2(host):
    out = host.check_output(f"systemd-analyze security {UNIT} --no-pager")
    exposure = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))
    assert exposure <= 2.0, out


def test_api_key_only_in_the_protected_secrets_file(host):
    secrets = host.file("/etc/animaflow/llamacpp.secrets.env")
    assert (secrets.user, secrets.group, secrets.mode) == ("root", "animaflow", 0o640)
    assert f'LLAMA_API_KEY="{API_KEY}"' in secrets.content_string
    # The settings file (shown by --diff) never holds it.
    assert API_KEY not in host.file("/etc/animaflow/llamacpp.env").content_string
    pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    assert API_KEY not in host.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")


@pytest.mark.parametrize("path", ["/opt/animaflow/llamacpp", "/var/lib/animaflow/models/{model_file}"])
def test_files_are_not_writable_by_the_service_user(host, path):
    f = host.file(path.format(model_file=MODELS[host.backend.get_hostname()][1]))
    assert f.user == "root"
    assert not f.mode & 0o022


def test_starting_llamacpp_stopped_and_disabled_the_other_backend(host):
    other = host.service("animaflow-ollama")
    assert not other.is_running
    assert not other.is_enabled
    assert host.service("animaflow-llamacpp").is_enabled
