# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The backends catalogue, meta/backends.yml: the one loader for the lookup, the filters and the control plane.

Controller side only (it needs PyYAML); no module imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CATALOGUE_FILE = Path(__file__).resolve().parents[2] / "meta" / "backends.yml"


def load_catalogue(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """animaflow_backends from the collection's meta/backends.yml (or path): backend name -> entry."""
    with open(path or CATALOGUE_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)["animaflow_backends"]
