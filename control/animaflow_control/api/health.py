"""Liveness for supervisors, and metrics for Prometheus."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from animaflow_control.api.deps import ServicesDep, Viewer
from animaflow_control.schemas.common import UNFINISHED
from animaflow_control.schemas.health import Health
from animaflow_control.services import metrics

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz(services: ServicesDep) -> Health:
    services.store.query("SELECT 1")
    active = services.store.runs_by_state()
    return Health(status="ok", database="ok", active_runs=sum(active.get(state, 0) for state in UNFINISHED))


@router.get("/metrics", response_class=PlainTextResponse)
def prometheus(services: ServicesDep, _: Viewer) -> PlainTextResponse:
    text = metrics.render(
        services.store.runs_by_state(), services.store.count_events(), services.http.snapshot()
    )
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
