"""The farm's nodes with their last facts and backend states."""

from __future__ import annotations

from fastapi import APIRouter

from animaflow_control.api.deps import ServicesDep, Viewer
from animaflow_control.schemas.nodes import NodeList
from animaflow_control.services.farm import farm_nodes

router = APIRouter(prefix="/api/nodes", tags=["nodes"])


@router.get("", response_model=NodeList)
def list_nodes(services: ServicesDep, _: Viewer) -> NodeList:
    # An unreadable inventory is 503 (app.py's handler for InventoryError).
    return farm_nodes(services)
