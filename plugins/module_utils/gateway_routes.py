# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The studio gateway's routing table: every farm node becomes a LiteLLM deployment of the model it serves,
under the catalogue's name, so an assistant asks for that name and the proxy picks a node; and the URL
assistants use. Pure: the filters animaflow.inference.gateway_routes and gateway_url, the control plane
and the unit tests call it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

WILDCARDS = {"0.0.0.0", "::", "[::]", ""}


def _off(value: Any) -> bool:
    """A switch the inventory turned off: YAML's false, or the string an -e or an INI inventory gives."""
    return str(value).strip().lower() in {"false", "no", "off", "0"}


def _node_key_env(node: str) -> str:
    """The environment variable that carries a node's API key to the proxy (never in its config file)."""
    return "ANIMAFLOW_NODE_" + re.sub(r"[^A-Z0-9]+", "_", node.upper()).strip("_") + "_KEY"


def _address(node: str, hostvars: Mapping[str, Any]) -> str:
    """Where the gateway reaches the node: its advertised address, else the bound one unless it is a
    wildcard, else the inventory's connection address."""
    explicit = str(hostvars.get("animaflow_gateway_node_address") or "")
    if explicit:
        return explicit
    bound = str(hostvars.get("animaflow_bind_address") or "")
    if bound not in WILDCARDS:
        return bound
    return str(hostvars.get("ansible_host") or node)


def gateway_routes(
    nodes: list[str], hostvars: Mapping[str, Mapping[str, Any]], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """nodes: the farm's host names; hostvars: Ansible's; defaults: {model, port, api_key, catalogue} for
    what a node's variables leave unset (catalogue: the names animaflow_models lists)."""
    catalogue = set(defaults.get("catalogue") or [])
    model_list: list[dict[str, Any]] = []
    keys: dict[str, str] = {}
    deployments: list[dict[str, Any]] = []
    problems: list[str] = []
    for node in sorted(nodes):
        hv = hostvars.get(node, {})
        if _off(hv.get("animaflow_gateway_member", True)):
            continue
        model = str(hv.get("animaflow_model") or defaults.get("model") or "")
        if not model:
            problems.append(f"{node} names no model (animaflow_model)")
            continue
        if catalogue and model not in catalogue:
            problems.append(f"{node} serves {model}, which animaflow_models does not list")
            continue
        address = _address(node, hv)
        host = f"[{address}]" if ":" in address else address
        port = int(hv.get("animaflow_serve_port") or defaults.get("port") or 8000)
        api_base = f"http://{host}:{port}/v1"
        env = _node_key_env(node)
        keys[env] = str(hv.get("animaflow_api_key") or defaults.get("api_key") or "")
        model_list.append(
            {
                "model_name": model,
                # Every backend speaks OpenAI's API and serves the catalogue name (llama-server --alias,
                # vLLM/SGLang --served-model-name, Ollama's created model).
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": api_base,
                    "api_key": f"os.environ/{env}",
                },
                # The deployment's id in the proxy's logs, metrics and health answers: the node.
                "model_info": {"id": node},
            }
        )
        deployments.append({"node": node, "model": model, "api_base": api_base})
    return {
        "model_list": model_list,
        "node_keys": keys,
        "deployments": deployments,
        "models": sorted({d["model"] for d in deployments}),
        "problems": problems,
    }


def gateway_url(host: str, hostvars: Mapping[str, Any]) -> str:
    """The base URL assistants use for the gateway `host`: its virtual IP when two gateways share one,
    else its bound address unless a wildcard, else its connection address; https with the studio's
    certificate. Unset variables take the role's defaults (port 4000)."""
    scheme = "https" if hostvars.get("gateway_tls_certfile") else "http"
    address = str(hostvars.get("gateway_virtual_ip") or "").split("/")[0] or str(
        hostvars.get("gateway_host") or hostvars.get("animaflow_bind_address") or "127.0.0.1"
    )
    if address in WILDCARDS:
        address = str(hostvars.get("ansible_host") or host)
    if ":" in address:
        address = f"[{address}]"
    return f"{scheme}://{address}:{int(hostvars.get('gateway_port') or 4000)}/v1"


def gateway_metrics_url(host: str, hostvars: Mapping[str, Any]) -> str | None:
    """Where Prometheus scrapes the gateway `host` (LiteLLM's /metrics/, beside /v1; the slash matters),
    or None when gateway_metrics is off (the role's default is on)."""
    if _off(hostvars.get("gateway_metrics", True)):
        return None
    return gateway_url(host, hostvars).removesuffix("/v1") + "/metrics/"
