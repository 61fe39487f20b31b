"""Wakes the SSE streams of a run when ansible-runner (in its own thread) stores a new event, every
stream when a token is revoked (each checks its own), and closes them all when the server stops.

A run in progress also keeps its latest events here, each already rendered as an SSE message, so that
50 readers of one live log cost one render per event and no database read; a reader further behind,
or of a finished run, reads the store.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

FEED_EVENTS = 5000  # per run in progress; older ones are read from the store


def sse(event: str, data: object, event_id: int | None = None) -> str:
    prefix = f"id: {event_id}\n" if event_id is not None else ""
    return f"{prefix}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@dataclass
class Feed:
    seqs: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    # Bumped when the run's state (or error) changes: a stream reads the run again only then.
    state_version: int = 0


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)
        self.closed = threading.Event()
        # Bumped at each revocation: a stream re-checks its token only when this moved.
        self.revocations = 0
        self._feeds: dict[str, Feed] = {}

    def open_feed(self, run_id: str) -> None:
        with self._lock:
            self._feeds[run_id] = Feed()

    def close_feed(self, run_id: str) -> None:
        with self._lock:
            self._feeds.pop(run_id, None)

    def add_event(self, run_id: str, event: dict[str, Any]) -> None:
        """After the event is stored: keep it rendered for the live readers, and wake them."""
        message = sse("ansible", event, event["seq"])
        with self._lock:
            feed = self._feeds.get(run_id)
            if feed is not None and (not feed.seqs or event["seq"] > feed.seqs[-1]):
                feed.seqs.append(event["seq"])
                feed.messages.append(message)
                if len(feed.seqs) > FEED_EVENTS:
                    del feed.seqs[: FEED_EVENTS // 10], feed.messages[: FEED_EVENTS // 10]
        self.publish(run_id)

    def messages_after(self, run_id: str, after: int) -> tuple[list[int], list[str]] | None:
        """(seqs, messages) of the events after `after`, or None when this feed cannot tell them all (no
        feed: the run is over; or `after` is older than what the feed keeps)."""
        with self._lock:
            feed = self._feeds.get(run_id)
            if feed is None or (feed.seqs and after < feed.seqs[0] - 1 and feed.seqs[0] > 1):
                return None
            start = bisect.bisect_right(feed.seqs, after)
            return feed.seqs[start:], feed.messages[start:]

    def state_version(self, run_id: str) -> int | None:
        with self._lock:
            feed = self._feeds.get(run_id)
            return None if feed is None else feed.state_version

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

    def publish(self, run_id: str, state: bool = False) -> None:
        """Wakes the run's streams; state=True when the run's row changed (state, error)."""
        with self._lock:
            if state and run_id in self._feeds:
                self._feeds[run_id].state_version += 1
            waiters = list(self._waiters.get(run_id, ()))
        self._wake(waiters)

    def publish_all(self) -> None:
        with self._lock:
            waiters = [waiter for run_waiters in self._waiters.values() for waiter in run_waiters]
        self._wake(waiters)

    def revoked(self) -> None:
        with self._lock:
            self.revocations += 1
        self.publish_all()

    def close(self) -> None:
        self.closed.set()
        self.publish_all()

    @staticmethod
    def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]) -> None:
        for loop, flag in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(flag.set)
