"""The studio gateway as the dashboard shows it (roles/gateway)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class GatewayDeployment(BaseModel):
    node: str
    model: str = Field(description="The catalogue name the node serves under, whichever backend runs")
    api_base: str = Field(description="Where the gateway reaches the node's backend")
    backend: str | None = Field(
        default=None, description="The node's active backend in its last status report"
    )
    healthy: bool | None = Field(default=None, description="Its health in that report; null before the first")


class Gateway(BaseModel):
    configured: bool = Field(description="The inventory has a gateway group")
    hosts: list[str] = []
    url: str | None = Field(default=None, description="The base URL an assistant uses (OpenAI API, /v1)")
    answering: bool | None = Field(
        default=None, description="The gateway answered its liveliness check just now"
    )
    metrics_url: str | None = Field(
        default=None, description="Its Prometheus metrics (per node answers, failures, state); null when off"
    )
    models: list[str] = Field(default=[], description="The model names assistants ask for")
    key_names: list[str] = Field(default=[], description="The studio key and the applications' (names only)")
    deployments: list[GatewayDeployment] = []
    left_out: list[str] = Field(default=[], description="Nodes the routing leaves out, and why")
