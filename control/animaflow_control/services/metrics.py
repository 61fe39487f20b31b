"""Prometheus text exposition, by hand: three metric families do not warrant a client library."""

from __future__ import annotations

import threading
from collections import Counter

from animaflow_control.schemas.common import RunState


class HttpCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def count(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self._counts[(method, route, status)] += 1

    def snapshot(self) -> dict[tuple[str, str, int], int]:
        with self._lock:
            return dict(self._counts)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(runs_by_state: dict[str, int], events_stored: int, http: dict[tuple[str, str, int], int]) -> str:
    lines = [
        "# HELP animaflow_runs Runs known to the control plane, by state.",
        "# TYPE animaflow_runs gauge",
        *(
            f'animaflow_runs{{state="{state.value}"}} {runs_by_state.get(state.value, 0)}'
            for state in RunState
        ),
        "# HELP animaflow_events_stored Ansible events stored in the database.",
        "# TYPE animaflow_events_stored gauge",
        f"animaflow_events_stored {events_stored}",
        "# HELP animaflow_http_requests_total HTTP requests served, by method, route and status.",
        "# TYPE animaflow_http_requests_total counter",
    ]
    for (method, route, status), count in sorted(http.items()):
        lines.append(
            f'animaflow_http_requests_total{{method="{method}",route="{_label(route)}",status="{status}"}} {count}'
        )
    return "\n".join(lines) + "\n"
