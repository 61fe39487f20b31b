"""Settings from the environment (ANIMAFLOW_*); the defaults run the checkout as it is."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The control plane ships inside the collection (control/ at the collection root) and is installed
# editable from there, so the collection's playbooks, inventories and catalogue are found next to it.
COLLECTION_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# A list from the environment is a comma-separated string (not JSON): ANIMAFLOW_ALLOWED_HOSTS=a,b
CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANIMAFLOW_", frozen=True)

    # The directory: the local node (hosts.yml) and the demo's studio gateway (gateway.yml).
    inventory: Path = COLLECTION_ROOT / "inventories" / "local"
    playbook_dir: Path = COLLECTION_ROOT / "playbooks"
    ansible_config: Path = COLLECTION_ROOT / "ansible.cfg"
    # The playbooks' animaflow_controller_dir: same variable and default as docs/contracts.md.
    state_dir: Path = COLLECTION_ROOT / ".state"
    # The control plane's own state (private run dirs, admin token file); defaults under state_dir.
    data_dir: Path | None = None
    db_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8800, ge=1, le=65535)
    session_hours: int = Field(default=12, ge=1, le=24 * 366)
    # Set when a TLS proxy fronts the dashboard; plain-HTTP loopback needs it off.
    cookie_secure: bool = False
    run_timeout_s: int = Field(default=4 * 3600, ge=10, le=7 * 24 * 3600)
    # How long a canceled run's processes get to end after SIGTERM before SIGKILL.
    stop_grace_s: float = Field(default=10.0, ge=0, le=600)
    # Runs (ansible-playbook, its forks) are batch work next to an interactive API on one controller:
    # they run at this niceness so the dashboard answers while a farm-wide upgrade forks. 0: as the server.
    run_nice: int = Field(default=10, ge=0, le=19)

    # What a client can send: request bodies are JSON of a few hundred bytes; anything larger is refused.
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Host names a state-changing request may be addressed to; empty: the bound address and loopback
    # names. "*" allows any (only behind a proxy that checks Host itself).
    allowed_hosts: CommaList = []
    # Origins besides the server's own that may send state-changing requests (e.g. a TLS proxy's URL).
    allowed_origins: CommaList = []
    # /docs and /openapi.json without signing in.
    public_docs: bool = False
    # Finished runs (records, events, private run dirs) are pruned past this age or total size.
    keep_runs_days: int = Field(default=90, ge=1, le=36500)
    keep_runs_gb: float = Field(default=5.0, gt=0, le=100_000)

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @cached_property
    def hosts_allowed(self) -> frozenset[str]:
        names = self.allowed_hosts or [self.host, *LOOPBACK_HOSTS]
        return frozenset(name.strip("[]").rstrip(".").lower() for name in names)

    @cached_property
    def origins_allowed(self) -> frozenset[str]:
        return frozenset(origin.rstrip("/").lower() for origin in self.allowed_origins)

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
