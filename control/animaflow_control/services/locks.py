"""One run per node at a time: all of a run's nodes are taken at once, or none.

In memory on purpose: the control plane is one process, and a restart marks every unfinished run
interrupted, so no lock can outlive its run.
"""

from __future__ import annotations

import threading


class NodeBusy(Exception):
    def __init__(self, holders: dict[str, str]) -> None:
        self.holders = holders
        runs = ", ".join(sorted(set(holders.values())))
        super().__init__(f"node(s) {', '.join(sorted(holders))} busy with run {runs}")


class NodeLocks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[str, str] = {}

    def acquire(self, hosts: list[str], run_id: str) -> None:
        with self._lock:
            busy = {host: self._holders[host] for host in hosts if host in self._holders}
            if busy:
                raise NodeBusy(busy)
            self._holders.update(dict.fromkeys(hosts, run_id))

    def release(self, run_id: str) -> None:
        with self._lock:
            self._holders = {host: holder for host, holder in self._holders.items() if holder != run_id}

    def holder(self, host: str) -> str | None:
        with self._lock:
            return self._holders.get(host)
