"""Verify the node role on a CPU-only node and on a node with the recorded 8x H100 nvidia-smi."""

import json
import os
from pathlib import Path

import pytest

REPORTS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "controller" / "facts"


def report(host) -> dict:
    name = host.backend.get_hostname()
    return json.loads((REPORTS / f"{name}.json").read_text())


def test_service_user_is_a_locked_system_account(host):
    user = host.user("animaflow")
    assert user.exists
    assert user.uid < 1000
    assert user.group == "animaflow"
    assert user.shell == "/usr/sbin/nologin"
    assert user.home == "/var/lib/animaflow"


@pytest.mark.parametrize(
    ("path", "owner", "mode"),
    [
        ("/opt/animaflow", "root", 0o755),
        ("/etc/animaflow", "root", 0o750),
        ("/var/lib/animaflow", "animaflow", 0o750),
        ("/var/lib/animaflow/models", "animaflow", 0o750),
    ],
)
def test_directories(host, path, owner, mode):
    d = host.file(path)
    assert d.is_directory
    assert d.user == owner
    assert d.group == "animaflow"
    assert d.mode == mode


def test_reported_facts_match_the_node(host):
    facts = report(host)
    name = host.backend.get_hostname()
    cpu = facts["cpu"]
    assert cpu["logical_cpus"] == int(host.check_output("nproc --all"))
    assert cpu["physical_cores"] >= 1
    assert cpu["memory_total_mib"] > 1024
    if name.endswith("-node-2"):
        gpu = facts["gpu"]
        assert gpu["accelerator"] == "cuda"
        assert gpu["vendor"] == "nvidia"
        assert gpu["count"] == 8
        assert {g["name"] for g in gpu["gpus"]} == {"NVIDIA H100 80GB HBM3"}
        assert {g["compute_capability"] for g in gpu["gpus"]} == {"9.0"}
        assert gpu["driver_version"] == "550.54.15"
        assert gpu["cuda_version"] == "12.4"
        assert gpu["total_memory_mib"] == 8 * 81559
        assert "nvidia-smi" in gpu["sources"]
        assert facts["serve_port"] == 8001
        assert facts["bind_address"] == "127.0.0.14"
        assert "vllm" in facts["summary"]
    else:
        gpu = facts["gpu"]
        assert gpu["accelerator"] == "cpu"
        assert gpu["count"] == 0
        assert gpu["gpus"] == []
        assert facts["bind_address"] == "127.0.0.13"
        assert facts["serve_port"] == 8000
        assert "vllm" not in facts["summary"]
        assert "llamacpp" in facts["summary"]
