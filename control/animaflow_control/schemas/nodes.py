"""Nodes of the farm with what the playbooks last reported about them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class BackendState(BaseModel):
    installed_versions: list[str] = []
    active_version: str | None = None
    running: bool | None = None
    healthy: bool | None = None
    endpoint: str | None = None
    model: str | None = None


class BackendPlan(BaseModel):
    """What an action on this node's backend takes unless the click says otherwise, for its confirmation."""

    version: str | None = Field(
        default=None,
        description="The release Install and Upgrade take: the inventory's <backend>_version, else the role's"
        " default; none when the inventory computes it (a template)",
    )
    model: str | None = Field(
        default=None, description="The model it serves: the inventory's <backend>_model, else animaflow_model"
    )


class NodeStatus(BaseModel):
    backends: dict[str, BackendState] = {}
    active_backend: str | None = None
    collected_at: str | None = None


class NodeFacts(BaseModel):
    summary: str | None = None
    gpu: dict[str, Any] | None = None
    cpu: dict[str, Any] | None = None
    os: str | None = None
    collected_at: str | None = None


class Node(BaseModel):
    name: str
    groups: list[str]
    busy_run: str | None = Field(description="The run holding this node, if any")
    busy_state: str | None = Field(
        default=None, description="That run's state: stopping while its processes are still being ended"
    )
    facts: NodeFacts | None
    status: NodeStatus | None
    runnable_backends: list[str] = Field(
        description="Backends this node's hardware can run (the recommendation's eligibility)"
    )
    plans: dict[str, BackendPlan] = Field(default={}, description="Per backend: what an action would take")


class NodeList(BaseModel):
    nodes: list[Node]
    groups: dict[str, list[str]]
    backends: dict[str, str] = Field(description="Backend name -> title, from meta/backends.yml")
