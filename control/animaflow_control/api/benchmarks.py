"""Benchmark results and the backend recommendation."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from animaflow_control.api.deps import ServicesDep, Viewer
from animaflow_control.schemas.benchmarks import BenchmarkList, Recommendation
from animaflow_control.services.inventory import InventoryError
from animaflow_control.services.recommendation import recommend_for_farm

router = APIRouter(prefix="/api", tags=["benchmarks"])


@router.get("/benchmarks", response_model=BenchmarkList)
def list_benchmarks(services: ServicesDep, _: Viewer) -> BenchmarkList:
    results, skipped = services.reports.benchmarks()
    return BenchmarkList(results=results, skipped_files=skipped, tunings=services.reports.tunings())


@router.get("/recommendation", response_model=Recommendation)
def recommendation(services: ServicesDep, _: Viewer) -> Recommendation:
    try:
        inventory = services.inventory.read()
    except InventoryError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
    return recommend_for_farm(inventory, services.reports)
