"""Each backend's unit, rendered for a recorded CUDA or ROCm node, lets its runtime start (issue 14).

For every unit converge.yml installed: the probe twin (only ExecStart differs) is started and must
read /proc/meminfo through psutil, open AF_NETLINK where the backend needs it, and reach every device
node of the node's accelerator; `systemd-analyze security` must report the figure the unit claims.
The unit from before issue 14 is the negative control: it must fail the probe.

DeviceAllow= is NOT enforced in these nodes (cgroup v1 hybrid host, the devices hierarchy is read-only
in the container; checked: DevicePolicy=closed still reaches an unlisted driver). So the device
check here proves that nothing else in the unit (PrivateDevices=, ProtectSystem=, the user's groups,
ProtectProc=) blocks the nodes, and test_device_allow_covers_every_node_device checks the allow-list
against the driver classes of the node's /proc/devices (molecule.yml, a recorded stand-in).
"""

from __future__ import annotations

import json
import re

# What each backend's runtime does at start-up (README of roles/backend, "Hardening profiles").
NEEDS = {
    "llamacpp": {"meminfo": "ok", "netlink": "blocked"},
    "ollama": {"meminfo": "ok", "netlink": "blocked"},
    "vllm": {"meminfo": "ok", "netlink": "ok"},
    "sglang": {"meminfo": "ok", "netlink": "ok"},
}
# CPU units: PrivateDevices= hides every device node; llama.cpp on CPU keeps ProcSubset=pid.
CPU_NEEDS = {
    "llamacpp": {"meminfo": "hidden", "netlink": "blocked"},
    "ollama": {"meminfo": "ok", "netlink": "blocked"},
}
CLAIM = re.compile(r"^# Claimed exposure \(systemd-analyze security, systemd 252\): ([0-9.]+)$", re.M)
EXPOSURE = re.compile(r"Overall exposure level for \S+: ([0-9.]+)")


def settings(host) -> dict:
    return host.ansible.get_variables()


def outcome(result: dict) -> dict:
    """meminfo and netlink, without the error text that follows "hidden"."""
    return {key: result[key].split(" ")[0] for key in ("meminfo", "netlink")}


def run_probe(host, unit: str) -> dict:
    """Start the probe unit, wait for it to exit, return the JSON line of this invocation."""
    host.run(f"systemctl reset-failed {unit}")
    # The unit's output, after this point: the journal cannot tell invocations apart here (in these
    # nodes systemd cannot move the process into the unit's v1 cgroup, so no invocation id is logged).
    cursor = host.check_output("journalctl -q -n 0 --show-cursor").removeprefix("-- cursor: ").strip()
    host.check_output(f"systemctl start {unit}")
    # The probe exits on its own within a second; the bound only keeps a hung probe from hanging the test.
    host.check_output(
        f"for i in $(seq 600); do s=$(systemctl show -p ActiveState --value {unit});"
        f' [ "$s" = inactive ] || [ "$s" = failed ] && exit 0; sleep 0.1; done; exit 1'
    )
    log = host.check_output(f"journalctl --no-pager -o cat -u {unit} --after-cursor '{cursor}'")
    lines = [line for line in log.splitlines() if line.startswith("UNIT-PROBE ")]
    assert lines, f"{unit} printed no probe result:\n{log}"
    return json.loads(lines[-1].removeprefix("UNIT-PROBE "))


def exposure(host, unit: str) -> float:
    out = host.check_output(f"systemd-analyze security {unit} --no-pager")
    return float(EXPOSURE.search(out).group(1))


def unit_text(host, unit: str) -> str:
    return host.file(f"/etc/systemd/system/{unit}").content_string


def test_probe_twins_differ_from_the_units_only_in_exec_start(host):
    s = settings(host)
    pairs = [(f"animaflow-{b}.service", f"animaflow-probe-{b}.service") for b in s["units_backends"]]
    for real, probe in pairs:
        a = [line for line in unit_text(host, real).splitlines() if not line.startswith("ExecStart=")]
        b = [line for line in unit_text(host, probe).splitlines() if not line.startswith("ExecStart=")]
        assert a == b, (real, probe)
        assert "ExecStart=/usr/bin/python3 /usr/local/bin/animaflow-unit-probe " in unit_text(host, probe)


def test_gpu_units_pass_the_probe(host):
    s = settings(host)
    devices = [d["path"] for d in s["units_devices"]]
    results = {b: run_probe(host, f"animaflow-probe-{b}.service") for b in s["units_backends"]}
    for backend, result in results.items():
        assert result["uid"] != 0, result
        assert outcome(result) == NEEDS[backend], (backend, result)
        assert result["devices"] == dict.fromkeys(devices, "reached"), (backend, result)


def test_cpu_units_pass_the_probe_with_devices_hidden(host):
    s = settings(host)
    devices = [d["path"] for d in s["units_devices"]]
    for backend in s["units_cpu_backends"]:
        result = run_probe(host, f"animaflow-probe-{backend}-cpu.service")
        assert outcome(result) == CPU_NEEDS[backend], (backend, result)
        assert result["devices"] == dict.fromkeys(devices, "hidden"), (backend, result)


def test_the_unit_from_before_issue_14_fails_the_probe(host):
    if "vllm" not in settings(host)["units_backends"]:
        return
    result = run_probe(host, "animaflow-probe-before.service")
    assert outcome(result) == {"meminfo": "hidden", "netlink": "blocked"}, result


def test_device_allow_covers_every_node_device(host):
    s = settings(host)
    for backend in s["units_backends"]:
        unit = f"animaflow-{backend}.service"
        show = host.check_output(f"systemctl show -p DevicePolicy -p DeviceAllow {unit}")
        assert "DevicePolicy=closed" in show.splitlines(), (unit, show)
        # One DeviceAllow= line per entry; ProtectClock= adds char-rtc r.
        allowed = set(re.findall(r"^DeviceAllow=char-(\S+) rw$", show, re.M))
        needed = {d["class"] for d in s["units_devices"]}
        assert allowed == needed, (unit, allowed, needed)


def test_exposure_is_the_claimed_figure(host):
    s = settings(host)
    units = [f"animaflow-{b}.service" for b in s["units_backends"]]
    units += [f"animaflow-{b}-cpu.service" for b in s["units_cpu_backends"]]
    measured = {}
    for unit in units:
        claim = CLAIM.search(unit_text(host, unit))
        assert claim, f"{unit} states no claimed exposure"
        measured[unit] = (exposure(host, unit), float(claim.group(1)))
    print("exposure measured, claimed:", measured)
    assert all(got == want for got, want in measured.values()), measured
    # The probe twins score the same: ExecStart= is not part of the figure.
    for backend in s["units_backends"]:
        assert (
            exposure(host, f"animaflow-probe-{backend}.service")
            == measured[f"animaflow-{backend}.service"][0]
        )
