"""Benchmark results and the backend recommendation."""

from __future__ import annotations

from fastapi import APIRouter

from animaflow_control.api.deps import ServicesDep, Viewer
from animaflow_control.schemas.benchmarks import BenchmarkList, Recommendation
from animaflow_control.services.recommendation import recommend_for_farm

router = APIRouter(prefix="/api", tags=["benchmarks"])


@router.get("/benchmarks", response_model=BenchmarkList)
def list_benchmarks(services: ServicesDep, _: Viewer) -> BenchmarkList:
    results, skipped = services.reports.benchmarks()
    return BenchmarkList(results=results, skipped_files=skipped, tunings=services.reports.tunings())


@router.get("/recommendation", response_model=Recommendation)
def recommendation(services: ServicesDep, _: Viewer) -> Recommendation:
    # An unreadable inventory is 503 (app.py's handler for InventoryError).
    return recommend_for_farm(services.inventory.read(), services.reports)
