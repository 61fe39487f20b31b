# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Parsers for systemctl's unit listings, shaped like ansible.builtin.service_facts' entries.

service_facts lists every unit and unit file on the node and runs `systemctl show` once for each unit
file that is not loaded: about 2.9 s of the node's CPU a call on a bare container node, more on a real
one. The backends need only their own units, so unit_facts asks systemctl for those by pattern (three
calls at most) and parses the output here, with the same meaning of state and status.
"""

from __future__ import annotations

# States that say more than active/inactive or the unit file's state (service_facts' BAD_STATES).
BAD_STATES = ("not-found", "masked", "failed")


def _entry(name: str, state: str, status: str) -> dict[str, str]:
    return {"name": name, "state": state, "status": status, "source": "systemd"}


def parse_list_units(stdout: str) -> dict[str, dict[str, str]]:
    """`systemctl list-units --all --type service --plain --no-legend`: UNIT LOAD ACTIVE SUB DESCRIPTION."""
    services: dict[str, dict[str, str]] = {}
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) < 4 or not fields[0].endswith(".service"):
            continue
        name, load, active, sub = fields[:4]
        bad = [state for state in BAD_STATES if state in (load, active, sub)]
        services[name] = _entry(name, "running" if sub == "running" else "stopped", bad[0] if bad else active)
    return services


def parse_list_unit_files(stdout: str) -> dict[str, str]:
    """`systemctl list-unit-files --type service --no-legend`: UNIT FILE STATE [PRESET] -> {unit: state}."""
    files = {}
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].endswith(".service"):
            files[fields[0]] = fields[1]
    return files


def parse_show(stdout: str) -> dict[str, str]:
    """`systemctl show -p Id,ActiveState UNIT...`: blocks of KEY=VALUE lines -> {unit: ActiveState}."""
    states: dict[str, str] = {}
    for block in stdout.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            states[props["Id"]] = props.get("ActiveState", "unknown")
    return states


def merge(
    loaded: dict[str, dict[str, str]], files: dict[str, str], unloaded: dict[str, str]
) -> dict[str, dict[str, str]]:
    """The loaded units, each given its unit file's state unless a bad state says more, then the unit
    files systemd has not loaded (their ActiveState from `systemctl show`), as service_facts does."""
    services = {name: dict(entry) for name, entry in loaded.items()}
    for name, file_state in files.items():
        if name not in services:
            services[name] = _entry(name, unloaded.get(name, "unknown"), file_state)
        elif services[name]["status"] not in BAD_STATES:
            services[name]["status"] = file_state
    return services
