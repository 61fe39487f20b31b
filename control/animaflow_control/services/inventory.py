"""The farm as Ansible sees it: `ansible-inventory --list` parses every inventory format and plugin the
playbooks accept, so the hosts the API validates against are exactly the hosts a run would target."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FARM_GROUP = "farm"
# The studio gateway's hosts (roles/gateway): not farm nodes, shown apart.
GATEWAY_GROUP = "gateway"


class InventoryError(Exception):
    pass


@dataclass(frozen=True)
class Inventory:
    hosts: list[str]
    groups: dict[str, list[str]]
    hostvars: dict[str, dict[str, Any]] = field(repr=False)
    gateways: list[str] = field(default_factory=list)
    gateway_vars: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def resolve(self, targets: list[str]) -> tuple[list[str], list[str]]:
        """Expand host and group names into farm hosts; returns (hosts, unknown targets)."""
        hosts: list[str] = []
        unknown: list[str] = []
        for target in targets:
            if target in self.groups:
                members = self.groups[target]
            elif target in self.hosts:
                members = [target]
            else:
                unknown.append(target)
                continue
            hosts.extend(host for host in members if host not in hosts)
        return hosts, unknown

    def host_groups(self, host: str) -> list[str]:
        return sorted(name for name, members in self.groups.items() if host in members and name != FARM_GROUP)


def parse_inventory_list(listing: dict[str, Any]) -> Inventory:
    def members(group: str, seen: frozenset[str] = frozenset()) -> list[str]:
        entry = listing.get(group, {})
        found = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            if child not in seen:
                found.extend(host for host in members(child, seen | {group}) if host not in found)
        return found

    farm = members(FARM_GROUP)
    groups = {FARM_GROUP: farm}
    pending = list(listing.get(FARM_GROUP, {}).get("children", []))
    while pending:
        group = pending.pop()
        if group not in groups:
            groups[group] = members(group)
            pending.extend(listing.get(group, {}).get("children", []))
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    gateways = members(GATEWAY_GROUP)
    return Inventory(
        hosts=farm,
        groups=groups,
        hostvars={host: hostvars.get(host, {}) for host in farm},
        gateways=gateways,
        gateway_vars={host: hostvars.get(host, {}) for host in gateways},
    )


class InventoryReader:
    def __init__(self, path: Path, ansible_config: Path) -> None:
        self.path = path
        self.ansible_config = ansible_config
        self._lock = threading.Lock()
        self._cached: tuple[tuple[float, ...], Inventory] | None = None

    def _signature(self) -> tuple[float, ...]:
        if self.path.is_dir():
            return tuple(sorted(p.stat().st_mtime for p in self.path.rglob("*") if p.is_file()))
        return (self.path.stat().st_mtime,) if self.path.exists() else ()

    def read(self) -> Inventory:
        with self._lock:
            signature = self._signature()
            if self._cached is None or self._cached[0] != signature:
                self._cached = (signature, self._load())
            return self._cached[1]

    def _load(self) -> Inventory:
        if not self.path.exists():
            raise InventoryError(f"inventory {self.path} does not exist (set ANIMAFLOW_INVENTORY)")
        # The ansible-inventory of this venv first, so that it matches the ansible-core the runner uses.
        beside = Path(sys.executable).parent / "ansible-inventory"
        executable = (
            str(beside) if beside.exists() else shutil.which("ansible-inventory") or "ansible-inventory"
        )
        command = [executable, "-i", str(self.path), "--list"]
        env = {**os.environ, "ANSIBLE_CONFIG": str(self.ansible_config)}
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
        if result.returncode != 0:
            raise InventoryError(f"ansible-inventory failed: {result.stderr.strip()[-500:]}")
        inventory = parse_inventory_list(json.loads(result.stdout))
        if not inventory.hosts:
            raise InventoryError(f"inventory {self.path} has no hosts in group '{FARM_GROUP}'")
        return inventory
