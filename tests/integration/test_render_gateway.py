"""The studio gateway rendered for a farm that outgrew one gateway host: two gateways behind one virtual
IP (keepalived), cooldowns shared through Redis, the studio's certificate, three nodes (one on a wildcard
address, one left out). render/gateway.yml runs the role's preflight and writes what the role would
write on each gateway; nothing is installed and no second machine is needed."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml
from playbook_runner import run_playbook

RENDER = Path(__file__).resolve().parent / "render"
STUDIO_KEY = "render-studio-key-0123456789"
REDIS_PASSWORD = "render-redis-secret"
VRRP_PASSWORD = "vrrp-secret-long"


def inventory(base: Path, **gateway_vars) -> Path:
    cert, key = base / "cert.pem", base / "key.pem"
    cert.write_text("placeholder certificate\n")
    key.write_text("placeholder key\n")
    local = {"ansible_connection": "local"}
    data = {
        "all": {
            "vars": {
                "animaflow_models": [
                    {"name": "qwen-7b", "format": "gguf"},
                    {"name": "qwen-7b-hf", "format": "hf"},
                ],
                "animaflow_model": "qwen-7b",
                "animaflow_api_key": "render-node-key-0123",
                "animaflow_gateway_key": STUDIO_KEY,
                "gateway_app_keys": {"compositor": "render-compositor-key-01"},
                "gateway_virtual_ip": "192.0.2.100/24",
                "gateway_vrrp_password": VRRP_PASSWORD,
                "gateway_redis": {"host": "192.0.2.20", "password": REDIS_PASSWORD},
                "gateway_tls_certfile": str(cert),
                "gateway_tls_keyfile": str(key),
                **gateway_vars,
            },
            "children": {
                "gateway": {
                    "hosts": {
                        "gw-a": {**local, "animaflow_bind_address": "0.0.0.0"},
                        "gw-b": {**local, "animaflow_bind_address": "0.0.0.0"},
                    }
                },
                "farm": {
                    "hosts": {
                        "h100-01": {
                            **local,
                            "animaflow_bind_address": "192.0.2.11",
                            "animaflow_model": "qwen-7b-hf",
                        },
                        "cpu-01": {
                            **local,
                            "animaflow_bind_address": "0.0.0.0",
                            "ansible_host": "cpu-01.farm.example",
                        },
                        "ws-01": {**local, "animaflow_gateway_member": False},
                    }
                },
            },
        }
    }
    path = base / "inventory.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("gateway")
    proc = run_playbook(
        RENDER / "gateway.yml", inventory=inventory(base), extra_vars={"render_dir": str(base)}
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return {host: json.loads((base / f"{host}.json").read_text()) for host in ("gw-a", "gw-b")}


def test_both_gateways_route_the_same_farm_with_the_same_keys(rendered) -> None:
    a, b = rendered["gw-a"], rendered["gw-b"]
    assert a["config"] == b["config"] and a["keys"] == b["keys"]
    config = yaml.safe_load(a["config"])
    assert [
        (d["model_name"], d["litellm_params"]["api_base"], d["model_info"]["id"])
        for d in config["model_list"]
    ] == [
        ("qwen-7b", "http://cpu-01.farm.example:8000/v1", "cpu-01"),
        ("qwen-7b-hf", "http://192.0.2.11:8000/v1", "h100-01"),
    ]
    # A retry goes to a node that has not failed the request yet (molecule/gateway proves it live).
    assert {k: config["router_settings"][k] for k in ("num_retries", "enable_weighted_failover")} == {
        "num_retries": 2,
        "enable_weighted_failover": True,
    }
    assert config["litellm_settings"]["callbacks"] == ["prometheus"]
    assert a["keys"] == {
        "compositor": hashlib.sha256(b"render-compositor-key-01").hexdigest(),
        "studio": hashlib.sha256(STUDIO_KEY.encode()).hexdigest(),
    }


def test_cooldowns_are_shared_through_redis_and_no_secret_is_in_the_config(rendered) -> None:
    config = yaml.safe_load(rendered["gw-a"]["config"])
    assert config["router_settings"]["redis_host"] == "192.0.2.20"
    assert config["router_settings"]["redis_password"] == "os.environ/ANIMAFLOW_GATEWAY_REDIS_PASSWORD"
    text = rendered["gw-a"]["config"]
    for secret in (STUDIO_KEY, REDIS_PASSWORD, "render-node-key-0123", "render-compositor-key-01"):
        assert secret not in text
    env = rendered["gw-a"]["environment"]
    # Names ending in KEY/PASSWORD go to the secrets file the backend mechanism writes (never --diff).
    assert env["ANIMAFLOW_GATEWAY_REDIS_PASSWORD"] == REDIS_PASSWORD
    assert (
        env["ANIMAFLOW_NODE_CPU_01_KEY"] == "render-node-key-0123" and "ANIMAFLOW_NODE_WS_01_KEY" not in env
    )


def test_tls_with_the_studio_certificate(rendered) -> None:
    # Assistants use the virtual IP, over https, on both gateways.
    assert {rendered[host]["url"] for host in rendered} == {"https://192.0.2.100:4000/v1"}
    argv = rendered["gw-b"]["argv"]
    assert argv[argv.index("--ssl_certfile_path") + 1] == "/etc/animaflow/gateway/tls/cert.pem"
    assert argv[argv.index("--host") + 1] == "0.0.0.0" and argv[argv.index("--port") + 1] == "4000"


def test_keepalived_moves_the_virtual_ip_to_the_healthy_gateway(rendered) -> None:
    def settings(host: str) -> dict[str, str]:
        text = rendered[host]["keepalived"]
        return dict(
            re.findall(r"^\s+(virtual_router_id|priority|auth_pass|state|interface) (\S+)$", text, re.M)
        )

    a, b = settings("gw-a"), settings("gw-b")
    assert a == {
        "state": "BACKUP",
        "interface": "eth0",
        "virtual_router_id": "51",
        "priority": "150",
        "auth_pass": VRRP_PASSWORD[:8],
    }
    assert b == {**a, "priority": "100"}
    for host in rendered:
        text = rendered[host]["keepalived"]
        assert "192.0.2.100/24" in text
        assert (
            'script "/usr/bin/curl -fsSk -m 2 -o /dev/null https://127.0.0.1:4000/health/liveliness"' in text
        )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"gateway_host": "192.0.2.5"}, "gateway_host 0.0.0.0 or :: so the proxy answers on the address"),
        ({"gateway_vrrp_password": "short"}, "gateway_vrrp_password of 8+ characters"),
        ({"animaflow_gateway_key": "short"}, "the gateway needs the studio key"),
        ({"gateway_app_keys": {"studio": "another-key-0123456789"}}, 'not "studio"'),
        ({"animaflow_models": [{"name": "other"}]}, 'no node of the group "farm" can be routed to'),
        ({"gateway_version": "1.0.0"}, "no lock for LiteLLM 1.0.0"),
    ],
)
def test_bad_settings_are_refused_before_anything_changes(tmp_path: Path, extra: dict, message: str) -> None:
    proc = run_playbook(
        RENDER / "gateway.yml",
        inventory=inventory(tmp_path),
        extra_vars={"render_dir": str(tmp_path), **extra},
    )
    assert proc.returncode != 0
    assert message in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    assert "Nothing was changed" in proc.stdout
