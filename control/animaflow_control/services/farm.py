"""The farm's nodes with their last facts and backend states, for the API and the farm page."""

from __future__ import annotations

from animaflow_control.catalogue import backends
from animaflow_control.schemas.nodes import Node, NodeFacts, NodeList, NodeStatus
from animaflow_control.services.container import Services
from ansible_collections.animaflow.inference.plugins.module_utils.recommend import runnable


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
            )
        )
    return NodeList(
        nodes=nodes,
        groups={name: members for name, members in inventory.groups.items()},
        backends={name: spec.get("title", name) for name, spec in backends().items()},
    )
