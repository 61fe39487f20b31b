"""Settings from the environment (ANIMAFLOW_*); the defaults run the checkout as it is."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The control plane ships inside the collection (control/ at the collection root) and is installed
# editable from there, so the collection's playbooks, inventories and catalogue are found next to it.
COLLECTION_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANIMAFLOW_", frozen=True)

    inventory: Path = COLLECTION_ROOT / "inventories" / "local" / "hosts.yml"
    playbook_dir: Path = COLLECTION_ROOT / "playbooks"
    ansible_config: Path = COLLECTION_ROOT / "ansible.cfg"
    # The playbooks' animaflow_controller_dir: same variable and default as docs/contracts.md.
    state_dir: Path = COLLECTION_ROOT / ".state"
    # The control plane's own state (private run dirs, admin token file); defaults under state_dir.
    data_dir: Path | None = None
    db_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8800, ge=1, le=65535)
    session_hours: int = Field(default=12, ge=1)
    # Set when a TLS proxy fronts the dashboard; plain-HTTP loopback needs it off.
    cookie_secure: bool = False
    run_timeout_s: int = Field(default=4 * 3600, ge=10)

    @cached_property
    def data_path(self) -> Path:
        return self.data_dir or self.state_dir / "control"

    @cached_property
    def db_file(self) -> Path:
        return self.db_path or self.data_path / "animaflow.db"

    @cached_property
    def runs_dir(self) -> Path:
        return self.data_path / "runs"

    @cached_property
    def admin_token_file(self) -> Path:
        return self.data_path / "admin-token"
