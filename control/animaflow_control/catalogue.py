"""The backends catalogue (meta/backends.yml): the one list of backends the API accepts."""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import Any

import yaml

from animaflow_control.settings import COLLECTION_ROOT

CATALOGUE_FILE = COLLECTION_ROOT / "meta" / "backends.yml"


@cache
def backends() -> dict[str, dict[str, Any]]:
    with CATALOGUE_FILE.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)["animaflow_backends"]


# Built from the catalogue so that adding a backend there adds it to the API, its OpenAPI enum and the grid.
Backend = StrEnum("Backend", {name: name for name in backends()})
