"""The studio gateway: its URL, model names, key names and deployments (roles/gateway)."""

from __future__ import annotations

from fastapi import APIRouter

from animaflow_control.api.deps import ServicesDep, Viewer
from animaflow_control.schemas.gateway import Gateway
from animaflow_control.services.gateway import gateway_view

router = APIRouter(prefix="/api/gateway", tags=["gateway"])


@router.get("", response_model=Gateway)
def get_gateway(services: ServicesDep, _: Viewer) -> Gateway:
    # An unreadable inventory is 503 (app.py's handler for InventoryError).
    return gateway_view(services)
