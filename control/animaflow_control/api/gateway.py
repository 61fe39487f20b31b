"""The studio gateway: its URL, model names, key names and deployments (roles/gateway)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from animaflow_control.api.deps import ServicesDep, Viewer
from animaflow_control.schemas.gateway import Gateway
from animaflow_control.services.gateway import gateway_view
from animaflow_control.services.inventory import InventoryError

router = APIRouter(prefix="/api/gateway", tags=["gateway"])


@router.get("", response_model=Gateway)
def get_gateway(services: ServicesDep, _: Viewer) -> Gateway:
    try:
        return gateway_view(services)
    except InventoryError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
