"""Types shared by the request models: the enums and the strict string checks."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

TEMPLATE_MARKERS = ("{{", "{%", "{#")


def refuse_template_markers(value: str) -> str:
    # User input reaches Ansible only as extravars data; a string that looks like a template is refused
    # outright so that no later templating step, ours or Ansible's, can ever evaluate it.
    if any(marker in value for marker in TEMPLATE_MARKERS):
        raise ValueError("template markers ({{, {%, {#) are not allowed")
    return value


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
HOST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$"

SafeText = Annotated[str, StringConstraints(max_length=200), AfterValidator(refuse_template_markers)]
Version = Annotated[str, AfterValidator(refuse_template_markers), StringConstraints(pattern=NAME_PATTERN)]
ModelName = Annotated[str, AfterValidator(refuse_template_markers), StringConstraints(pattern=NAME_PATTERN)]
HostName = Annotated[str, AfterValidator(refuse_template_markers), StringConstraints(pattern=HOST_PATTERN)]


class Action(StrEnum):
    install = "install"
    start = "start"
    stop = "stop"
    switch = "switch"
    upgrade = "upgrade"
    status = "status"
    benchmark = "benchmark"
    uninstall = "uninstall"
    facts = "facts"


# Actions whose playbook works on one named backend; facts and status cover the whole node.
BACKEND_ACTIONS = frozenset(
    {
        Action.install,
        Action.start,
        Action.stop,
        Action.switch,
        Action.upgrade,
        Action.uninstall,
        Action.benchmark,
    }
)


class Role(StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class RunState(StrEnum):
    queued = "queued"
    running = "running"
    successful = "successful"
    failed = "failed"
    canceled = "canceled"
    interrupted = "interrupted"

    @property
    def finished(self) -> bool:
        return self not in (RunState.queued, RunState.running)
