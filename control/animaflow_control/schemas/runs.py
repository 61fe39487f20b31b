"""Runs: what a click asks for, and what the API reports back."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from animaflow_control.catalogue import Backend
from animaflow_control.schemas.common import BACKEND_ACTIONS, Action, HostName, ModelName, RunState, Version


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    backend: Backend | None = None
    hosts: Annotated[list[HostName], Field(min_length=1, max_length=500)] = Field(
        description="Inventory host names or group names (within the farm group)"
    )
    version: Version | None = None
    model: ModelName | None = None

    @model_validator(mode="after")
    def backend_when_needed(self) -> Self:
        if self.action in BACKEND_ACTIONS and self.backend is None:
            raise ValueError(f"action {self.action.value} needs a backend")
        if self.action is Action.upgrade and self.version is None:
            raise ValueError("upgrade needs the version to install beside the running one")
        return self


class RunCreated(BaseModel):
    id: str
    state: RunState


class HostProgress(BaseModel):
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: int = 0


class Progress(BaseModel):
    tasks_started: int
    tasks_expected: int | None = Field(description="Tasks in the last successful run of the same action")
    hosts: dict[str, HostProgress]


class Run(BaseModel):
    id: str
    action: Action
    backend: str | None
    targets: list[str]
    hosts: list[str]
    version: str | None
    model: str | None
    state: RunState
    rc: int | None
    error: str | None
    created_by: str
    canceled_by: str | None = Field(default=None, description="Who asked to cancel, or what cut the run off")
    created_at: str
    started_at: str | None
    finished_at: str | None


class Failure(BaseModel):
    host: str | None
    task: str | None
    message: str = Field(description="The failed task's message (its first 2,000 characters)")


class RunDetail(Run):
    progress: Progress
    failure: Failure | None = Field(
        default=None, description="The last task failure not ignored: what stopped a failed run"
    )


class RunList(BaseModel):
    runs: list[Run]


class RunEvent(BaseModel):
    seq: int
    event: str
    host: str | None
    task: str | None
    stdout: str
    data: dict[str, Any]
    created: str


class CancelResult(BaseModel):
    id: str
    cancel_requested: bool
