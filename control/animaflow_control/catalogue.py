"""The backends catalogue (meta/backends.yml): the one list of backends the API accepts."""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import Any

import yaml

from ansible_collections.animaflow.inference.plugins.module_utils.catalogue import (
    CATALOGUE_FILE,
    load_catalogue,
)


@cache
def backends() -> dict[str, dict[str, Any]]:
    return load_catalogue()


# Built from the catalogue so that adding a backend there adds it to the API, its OpenAPI enum and the grid.
Backend = StrEnum("Backend", {name: name for name in backends()})


@cache
def default_version(backend: str) -> str | None:
    """The release the backend's role installs when the inventory names none (<backend>_version in
    roles/<backend>/defaults/main.yml): what an Install click takes unless the inventory says otherwise."""
    defaults = CATALOGUE_FILE.parents[1] / "roles" / backend / "defaults" / "main.yml"
    if not defaults.is_file():
        return None
    value = (yaml.safe_load(defaults.read_text(encoding="utf-8")) or {}).get(f"{backend}_version")
    return str(value) if value else None
