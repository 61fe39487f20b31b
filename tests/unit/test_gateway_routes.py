"""The studio gateway's routing table (the gateway_routes filter) and its key check (the custom_auth hook
the LiteLLM proxy calls), without the proxy: molecule/gateway runs both in the real one."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
from fastapi import HTTPException

from ansible_collections.animaflow.inference.plugins.module_utils.gateway_routes import (
    gateway_metrics_url,
    gateway_routes,
    gateway_url,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = {"model": "qwen-7b", "port": 8000, "api_key": "farm-key", "catalogue": ["qwen-7b", "qwen-7b-hf"]}


def routes(hostvars: dict, defaults: dict = DEFAULTS) -> dict:
    return gateway_routes(list(hostvars), hostvars, defaults)


def test_every_node_is_a_deployment_of_its_catalogue_model_without_its_key_in_the_config() -> None:
    table = routes(
        {
            "gpu-h100-01": {"animaflow_bind_address": "10.20.0.11", "animaflow_model": "qwen-7b-hf"},
            "cpu-render-01": {"animaflow_bind_address": "10.20.0.31", "animaflow_api_key": "own-key"},
        }
    )
    assert table["models"] == ["qwen-7b", "qwen-7b-hf"]
    assert table["model_list"] == [
        {
            "model_name": "qwen-7b",
            "litellm_params": {
                "model": "openai/qwen-7b",
                "api_base": "http://10.20.0.31:8000/v1",
                "api_key": "os.environ/ANIMAFLOW_NODE_CPU_RENDER_01_KEY",
            },
            "model_info": {"id": "cpu-render-01"},
        },
        {
            "model_name": "qwen-7b-hf",
            "litellm_params": {
                "model": "openai/qwen-7b-hf",
                "api_base": "http://10.20.0.11:8000/v1",
                "api_key": "os.environ/ANIMAFLOW_NODE_GPU_H100_01_KEY",
            },
            "model_info": {"id": "gpu-h100-01"},
        },
    ]
    assert table["node_keys"] == {
        "ANIMAFLOW_NODE_CPU_RENDER_01_KEY": "own-key",
        "ANIMAFLOW_NODE_GPU_H100_01_KEY": "farm-key",
    }
    assert "farm-key" not in json.dumps(table["model_list"]) and "own-key" not in json.dumps(
        table["model_list"]
    )


def test_a_wildcard_bind_is_reached_at_the_advertised_or_connection_address() -> None:
    table = routes(
        {
            "a": {"animaflow_bind_address": "0.0.0.0", "ansible_host": "render-a.farm.example"},
            "b": {
                "animaflow_bind_address": "::",
                "animaflow_gateway_node_address": "fd00::b",
                "animaflow_serve_port": 9000,
            },
        }
    )
    assert [d["api_base"] for d in table["deployments"]] == [
        "http://render-a.farm.example:8000/v1",
        "http://[fd00::b]:9000/v1",
    ]


def test_nodes_left_out_are_named_with_the_reason() -> None:
    table = routes(
        {
            "unknown": {"animaflow_model": "llama-70b"},
            "opted-out": {"animaflow_gateway_member": False},
            "ok": {},
        }
    )
    assert [d["node"] for d in table["deployments"]] == ["ok"]
    assert table["problems"] == ["unknown serves llama-70b, which animaflow_models does not list"]
    assert routes({"no-model": {}}, {**DEFAULTS, "model": ""})["problems"] == [
        "no-model names no model (animaflow_model)"
    ]


@pytest.mark.parametrize(
    ("hostvars", "url"),
    [
        ({"animaflow_bind_address": "10.20.0.5"}, "http://10.20.0.5:4000/v1"),
        (
            {"gateway_host": "0.0.0.0", "ansible_host": "llm.studio.example", "gateway_port": 443},
            "http://llm.studio.example:443/v1",
        ),
        (
            {"gateway_host": "::", "gateway_virtual_ip": "fd00::100/64", "gateway_tls_certfile": "c.pem"},
            "https://[fd00::100]:4000/v1",
        ),
        ({}, "http://127.0.0.1:4000/v1"),
    ],
)
def test_the_url_assistants_use(hostvars: dict, url: str) -> None:
    assert gateway_url("gw", hostvars) == url


@pytest.mark.parametrize(
    ("hostvars", "url"),
    [
        ({"animaflow_bind_address": "10.20.0.5"}, "http://10.20.0.5:4000/metrics/"),
        (
            {"gateway_virtual_ip": "192.0.2.100/24", "gateway_tls_certfile": "c.pem"},
            "https://192.0.2.100:4000/metrics/",
        ),
        ({"gateway_metrics": False}, None),
        ({"gateway_metrics": "no"}, None),
        ({"gateway_metrics": "True"}, "http://127.0.0.1:4000/metrics/"),
    ],
)
def test_where_prometheus_scrapes(hostvars: dict, url: str | None) -> None:
    assert gateway_metrics_url("gw", hostvars) == url


def import_auth():
    """The hook as LiteLLM imports it: a module beside the proxy's config, reading ANIMAFLOW_GATEWAY_KEYS."""
    spec = importlib.util.spec_from_file_location(
        "gateway_auth", ROOT / "roles/gateway/files/animaflow_gateway_auth.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: dict[str, str]):
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps({name: hashlib.sha256(key.encode()).hexdigest() for name, key in keys.items()})
    )
    monkeypatch.setenv("ANIMAFLOW_GATEWAY_KEYS", str(path))
    return import_auth()


def test_the_key_check_names_the_application_and_refuses_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = load_auth(
        tmp_path, monkeypatch, {"studio": "studio-key-0123456789", "compositor": "compositor-key-abcdef"}
    )
    assert auth.key_name("compositor-key-abcdef", auth._KEYS) == "compositor"
    assert auth.key_name("studio-key-0123456789", auth._KEYS) == "studio"
    for wrong in ("", None, "studio-key-012345678", "x" * 64):
        assert auth.key_name(wrong, auth._KEYS) is None
        with pytest.raises(HTTPException) as refused:
            asyncio.run(auth.user_api_key_auth(None, wrong))
        assert refused.value.status_code == 401


def test_a_keys_file_with_clear_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"studio": "studio-key-in-the-clear"}))
    with pytest.raises(ValueError, match="sha256"):
        import_auth().load_keys(str(path))
