"""The backends catalogue (meta/backends.yml): the one list of backends the API accepts."""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import Any

from ansible_collections.animaflow.inference.plugins.module_utils.catalogue import load_catalogue


@cache
def backends() -> dict[str, dict[str, Any]]:
    return load_catalogue()


# Built from the catalogue so that adding a backend there adds it to the API, its OpenAPI enum and the grid.
Backend = StrEnum("Backend", {name: name for name in backends()})
