"""The farm's nodes with their last facts and backend states."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from animaflow_control.api.deps import ServicesDep, Viewer
from animaflow_control.catalogue import backends
from animaflow_control.schemas.nodes import Node, NodeFacts, NodeList, NodeStatus
from animaflow_control.services.container import Services
from animaflow_control.services.inventory import InventoryError

router = APIRouter(prefix="/api/nodes", tags=["nodes"])


def runnable(facts: dict | None) -> list[str]:
    accelerator = ((facts or {}).get("gpu") or {}).get("accelerator")
    if accelerator is None:
        return []
    return [name for name, spec in backends().items() if accelerator in spec.get("accelerators", [])]


def farm_nodes(services: Services) -> NodeList:
    try:
        inventory = services.inventory.read()
    except InventoryError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
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
                runnable_backends=runnable(facts),
            )
        )
    return NodeList(
        nodes=nodes,
        groups={name: members for name, members in inventory.groups.items()},
        backends={name: spec.get("title", name) for name, spec in backends().items()},
    )


@router.get("", response_model=NodeList)
def list_nodes(services: ServicesDep, _: Viewer) -> NodeList:
    return farm_nodes(services)
