"""The services one app instance shares, built from its settings."""

from __future__ import annotations

from dataclasses import dataclass

from animaflow_control.services.auth import Auth
from animaflow_control.services.controller_files import ControllerFiles
from animaflow_control.services.events import EventBus
from animaflow_control.services.inventory import InventoryReader
from animaflow_control.services.locks import NodeLocks
from animaflow_control.services.metrics import HttpCounter
from animaflow_control.services.runner import RunManager
from animaflow_control.services.store import Store
from animaflow_control.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    auth: Auth
    inventory: InventoryReader
    locks: NodeLocks
    bus: EventBus
    runs: RunManager
    reports: ControllerFiles
    http: HttpCounter

    def begin_shutdown(self) -> None:
        """On the stop signal: end the live-log streams at once (the server waits for open responses
        before it shuts down) and start stopping every run."""
        self.bus.close()
        self.runs.begin_shutdown()

    @classmethod
    def build(cls, settings: Settings) -> Services:
        store = Store(settings.db_file)
        inventory = InventoryReader(settings.inventory, settings.ansible_config)
        locks, bus = NodeLocks(), EventBus()
        return cls(
            settings=settings,
            store=store,
            auth=Auth(store, settings.session_hours),
            inventory=inventory,
            locks=locks,
            bus=bus,
            runs=RunManager(settings, store, inventory, locks, bus),
            reports=ControllerFiles(settings.state_dir),
            http=HttpCounter(),
        )
