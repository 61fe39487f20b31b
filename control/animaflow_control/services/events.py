"""Wakes the SSE streams of a run when ansible-runner (in its own thread) stores a new event."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)

    def subscribe(self, run_id: str) -> asyncio.Event:
        flag = asyncio.Event()
        with self._lock:
            self._waiters[run_id].add((asyncio.get_running_loop(), flag))
        return flag

    def unsubscribe(self, run_id: str, flag: asyncio.Event) -> None:
        with self._lock:
            waiters = self._waiters.get(run_id, set())
            waiters.difference_update({item for item in waiters if item[1] is flag})
            if not waiters:
                self._waiters.pop(run_id, None)

    def publish(self, run_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(run_id, ()))
        for loop, flag in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(flag.set)
