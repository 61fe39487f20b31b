# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""What of a backend is on a node: the installed versions (directories with a completion marker), the
active one (the target of `current`) and the state file. One module call reads all three; it replaced
a find and a slurp (each module call costs the node about half a second of CPU, and this read runs in
nearly every action and once per backend in every status report)."""

from __future__ import annotations

import json
import os
from typing import Any


def installed_versions(root: str, marker: str) -> list[str]:
    """The directories of root that hold the marker, sorted by name; links (current) are not versions."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    paths = {name: os.path.join(root, name) for name in names}
    return sorted(
        name
        for name, path in paths.items()
        if not os.path.islink(path) and os.path.isfile(os.path.join(path, marker))
    )


def active_version(root: str, link: str = "current") -> str:
    """The base name of what root/current points at; empty when there is no such link."""
    try:
        return os.path.basename(os.readlink(os.path.join(root, link)).rstrip("/"))
    except OSError:
        return ""


def read_state(path: str) -> dict[str, Any]:
    """The state file's JSON object; {} when there is none. ValueError names a file that is not one."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a JSON {type(state).__name__}, not an object")
    return state
