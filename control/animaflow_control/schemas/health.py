"""Liveness."""

from __future__ import annotations

from pydantic import BaseModel


class Health(BaseModel):
    status: str
    database: str
    active_runs: int
