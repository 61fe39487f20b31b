"""The studio gateway as the inventory defines it (roles/gateway): the URL assistants use, the model
names, each node's deployment with its last reported backend and health, and whether the gateway answers
now. The routing and the URLs are the role's own (module_utils/gateway_routes.py), so both always agree."""

from __future__ import annotations

import httpx

from animaflow_control.schemas.gateway import Gateway, GatewayDeployment
from animaflow_control.services.container import Services
from ansible_collections.animaflow.inference.plugins.module_utils.gateway_routes import (
    gateway_metrics_url,
    gateway_routes,
    gateway_url,
)

# The settings role's default serving port, for nodes whose inventory leaves it unset.
DEFAULT_SERVE_PORT = 8000


def answering(url: str) -> bool:
    """One liveliness check, 1 s at most: the page must not wait on a gateway that is down."""
    try:
        return (
            httpx.get(url.removesuffix("/v1") + "/health/liveliness", timeout=1.0, verify=False).status_code
            == 200
        )
    except httpx.HTTPError:
        return False


def gateway_view(services: Services) -> Gateway:
    """Raises InventoryError when the inventory cannot be read."""
    inventory = services.inventory.read()
    if not inventory.gateways:
        return Gateway(configured=False)
    first = inventory.gateways[0]
    hostvars = inventory.gateway_vars[first]
    nodes = inventory.groups.get(str(hostvars.get("gateway_nodes_group") or "farm"), inventory.hosts)
    catalogue = [str(m.get("name")) for m in hostvars.get("animaflow_models") or [] if isinstance(m, dict)]
    routes = gateway_routes(
        nodes,
        inventory.hostvars,
        {"model": "", "port": DEFAULT_SERVE_PORT, "api_key": "", "catalogue": catalogue},
    )
    deployments = []
    for route in routes["deployments"]:
        status = services.reports.node_report("status", route["node"]) or {}
        backend = status.get("active_backend")
        healthy = (status.get("backends") or {}).get(backend, {}).get("healthy") if backend else None
        deployments.append(GatewayDeployment(**route, backend=backend, healthy=healthy))
    url = gateway_url(first, hostvars)
    return Gateway(
        configured=True,
        hosts=inventory.gateways,
        url=url,
        answering=answering(url),
        metrics_url=gateway_metrics_url(first, hostvars),
        models=routes["models"],
        key_names=["studio", *sorted(hostvars.get("gateway_app_keys") or {})],
        deployments=deployments,
        left_out=routes["problems"],
    )
