#!/usr/bin/python3
"""Unit probe: run as a backend unit's ExecStart, it tries what GPU backends do at start-up.

Not a backend: the Molecule scenario `units` installs a backend's rendered unit with only ExecStart
replaced by this program, starts it and reads the one JSON line it prints (journal). It checks:

- meminfo: psutil.virtual_memory() and psutil.cpu_count(), as vLLM and SGLang call them (they read
  /proc/meminfo, /proc/cpuinfo, /proc/stat); "ok", or "hidden" when ProcSubset=pid hides them.
- netlink: socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), what glibc's getifaddrs() opens (NCCL, Gloo);
  "ok", or "blocked" when RestrictAddressFamilies= refuses it (EAFNOSUPPORT).
- each device path given: opened read-write (read-only for /dev/nvidia-caps/*, as the driver
  checks them). There is no GPU in the test nodes, so a device node whose driver is absent answers
  ENXIO/ENODEV: the open went past every access check to the kernel's driver lookup, "reached".
  EPERM/EACCES (a device cgroup or the file's mode) is "blocked"; ENOENT (PrivateDevices=) "hidden".

Always exits 0 (a failing ExecStart would be restarted by the unit's Restart=on-failure).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys

PREFIX = "UNIT-PROBE "
REACHED = {errno.ENXIO, errno.ENODEV}
BLOCKED = {errno.EPERM, errno.EACCES}


def classify(err: OSError) -> str:
    if err.errno in REACHED:
        return "reached"
    if err.errno in BLOCKED:
        return "blocked"
    if err.errno == errno.ENOENT:
        return "hidden"
    return f"error {errno.errorcode.get(err.errno or 0, err.errno)}"


def probe_meminfo() -> str:
    try:
        # Imported here: a missing psutil is a result, not a crash.
        import psutil

        total = psutil.virtual_memory().total
        cpus = psutil.cpu_count()
    except (ImportError, OSError, RuntimeError) as err:
        return f"hidden ({type(err).__name__}: {err})"
    return "ok" if total > 0 and (cpus or 0) > 0 else "hidden (zero)"


def probe_netlink() -> str:
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE):
            return "ok"
    except OSError as err:
        return "blocked" if err.errno == errno.EAFNOSUPPORT else classify(err)


def probe_device(path: str) -> str:
    flags = os.O_RDONLY if path.startswith("/dev/nvidia-caps/") else os.O_RDWR
    try:
        fd = os.open(path, flags | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as err:
        return classify(err)
    os.close(fd)
    return "reached"


def main(argv: list[str]) -> int:
    result = {
        "uid": os.getuid(),
        "meminfo": probe_meminfo(),
        "netlink": probe_netlink(),
        "devices": {path: probe_device(path) for path in argv},
    }
    print(PREFIX + json.dumps(result, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
