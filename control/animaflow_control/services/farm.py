"""The farm's nodes with their last facts and backend states, for the API and the farm page."""

from __future__ import annotations

from typing import Any

from animaflow_control.catalogue import backends, default_version
from animaflow_control.schemas.common import TEMPLATE_MARKERS
from animaflow_control.schemas.nodes import BackendPlan, Node, NodeFacts, NodeList, NodeStatus
from animaflow_control.services.container import Services
from ansible_collections.animaflow.inference.plugins.module_utils.recommend import runnable


def plain(value: Any) -> str | None:
    """An inventory value as it will be used, or None when Ansible would still template it."""
    text = str(value) if value not in (None, "") else None
    return None if text is None or any(marker in text for marker in TEMPLATE_MARKERS) else text


def backend_plans(hostvars: dict[str, Any]) -> dict[str, BackendPlan]:
    """Per backend, the release and model an action takes by default, as the roles read them."""
    plans = {}
    for name in backends():
        version = hostvars.get(f"{name}_version", default_version(name))
        model = hostvars.get(f"{name}_model") or hostvars.get("animaflow_model")
        plans[name] = BackendPlan(version=plain(version), model=plain(model))
    return plans


def farm_nodes(services: Services) -> NodeList:
    """Raises InventoryError when the inventory cannot be read."""
    inventory = services.inventory.read()
    nodes = []
    for host in inventory.hosts:
        busy_run = services.locks.holder(host)
        busy = services.store.get_run(busy_run) if busy_run else None
        facts = services.reports.node_report("facts", host)
        state = services.reports.node_report("status", host)
        nodes.append(
            Node(
                name=host,
                groups=inventory.host_groups(host),
                busy_run=busy_run,
                busy_state=busy["state"] if busy else None,
                facts=NodeFacts.model_validate(facts) if facts else None,
                status=NodeStatus.model_validate(state) if state else None,
                # The recommendation's own eligibility; nothing before the node's first facts run.
                runnable_backends=runnable(facts["gpu"], backends()) if facts and facts.get("gpu") else [],
                plans=backend_plans(inventory.hostvars.get(host, {})),
            )
        )
    return NodeList(
        nodes=nodes,
        groups={name: members for name, members in inventory.groups.items()},
        backends={name: spec.get("title", name) for name, spec in backends().items()},
    )
