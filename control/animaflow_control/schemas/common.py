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

# What each pattern means, in words: a person reads the error, not the regular expression.
PATTERN_WORDS = {
    NAME_PATTERN: "use letters, digits and . _ + - only, starting with a letter or digit, at most 64 characters"
    " (for example b11312, 0.5.23 or smollm2-135m)",
    HOST_PATTERN: "name a host or group of the inventory: letters, digits and . _ - only",
}

Version = Annotated[str, AfterValidator(refuse_template_markers), StringConstraints(pattern=NAME_PATTERN)]
ModelName = Annotated[str, AfterValidator(refuse_template_markers), StringConstraints(pattern=NAME_PATTERN)]
HostName = Annotated[str, AfterValidator(refuse_template_markers), StringConstraints(pattern=HOST_PATTERN)]

# The largest integer both SQLite (64-bit) and a browser's JavaScript (2**53 - 1) hold exactly: ids,
# offsets and sequence numbers from clients are bounded by it, so that none can overflow a query.
MAX_INT = 2**53 - 1


def refuse_unprintable(value: str) -> str:
    # Names are shown in lists and logs: no line breaks, NULs or direction overrides (U+202E) that could
    # forge or hide what a reader sees. isprintable() refuses control (Cc), format (Cf), line and
    # paragraph separator, private-use and unassigned characters, and every space but U+0020.
    for char in value:
        if not char.isprintable():
            raise ValueError(f"only printable characters are allowed, not U+{ord(char):04X}")
    return value


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


# Actions whose playbook works on one named backend; facts and status cover the whole node, and a
# benchmark without a backend is the farm's bake-off: every installed backend each node can run.
BACKEND_ACTIONS = frozenset(
    {
        Action.install,
        Action.start,
        Action.stop,
        Action.switch,
        Action.upgrade,
        Action.uninstall,
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
    # Canceled or cut off, and some of its processes are still being ended: its nodes stay held.
    stopping = "stopping"
    successful = "successful"
    failed = "failed"
    canceled = "canceled"
    interrupted = "interrupted"

    @property
    def finished(self) -> bool:
        return self not in UNFINISHED


UNFINISHED = frozenset({RunState.queued, RunState.running, RunState.stopping})
