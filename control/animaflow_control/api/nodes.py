"""The farm's nodes with their last facts and backend states."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from animaflow_control.api.deps import ServicesDep, Viewer
from animaflow_control.schemas.nodes import NodeList
from animaflow_control.services.farm import farm_nodes
from animaflow_control.services.inventory import InventoryError

router = APIRouter(prefix="/api/nodes", tags=["nodes"])


@router.get("", response_model=NodeList)
def list_nodes(services: ServicesDep, _: Viewer) -> NodeList:
    try:
        return farm_nodes(services)
    except InventoryError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
