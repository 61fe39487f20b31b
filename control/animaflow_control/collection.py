"""Make the collection importable as `ansible_collections.animaflow.inference` however the control
plane was installed.

The control plane and animaflow-bench import the collection's module_utils (the benchmark, the
catalogue). `make venv` puts <repo>/.collections on sys.path with a .pth file, but `pip install -e
./control` alone does not, and ansible-galaxy installs collections under paths Python does not search.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

_PACKAGE = "ansible_collections.animaflow.inference"


def _importable() -> bool:
    try:
        return importlib.util.find_spec(_PACKAGE) is not None
    except ModuleNotFoundError:  # no ansible_collections package at all
        return False


def search_paths() -> list[Path]:
    """Where to look, in order: this checkout, then Ansible's collection paths."""
    repo = Path(__file__).resolve().parents[2]
    configured = (
        os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS") or ""
    )
    paths = [repo / ".collections"]
    paths += [Path(entry).expanduser() for entry in configured.split(os.pathsep) if entry]
    paths += [Path.home() / ".ansible" / "collections", Path("/usr/share/ansible/collections")]
    return paths


def ensure_importable() -> None:
    if _importable():
        return
    for root in search_paths():
        if (root / "ansible_collections" / "animaflow" / "inference" / "plugins" / "module_utils").is_dir():
            sys.path.append(str(root))
            importlib.invalidate_caches()
            if _importable():
                return
    searched = ", ".join(str(path) for path in search_paths())
    raise ImportError(
        f"the animaflow.inference collection is not importable (looked in {searched}): run the control "
        "plane from the collection's checkout (pip install -e ./control, or make venv), or install the "
        "collection with ansible-galaxy and name its path in ANSIBLE_COLLECTIONS_PATH"
    )
