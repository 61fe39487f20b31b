"""Bearer tokens with roles, dashboard sessions and their CSRF tokens.

Tokens and session ids are 256-bit random strings, so a plain SHA-256 is a sufficient hash to store:
there is nothing to brute-force that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from animaflow_control.schemas.common import Role
from animaflow_control.services.store import Store

TOKEN_PREFIX = "af_"
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    role: Role
    csrf: str | None = None  # set when the caller came with a session cookie

    def can(self, role: Role) -> bool:
        return self.role.rank >= role.rank


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Auth:
    def __init__(self, store: Store, session_hours: int) -> None:
        self.store = store
        self.session_hours = session_hours

    def create_token(self, name: str, role: Role) -> tuple[str, dict]:
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        return secret, self.store.add_token(name, role.value, digest(secret))

    def bootstrap_admin(self, token_file: Path) -> str | None:
        """On the very first start, create an admin token; returns it so the console can show it once."""
        if self.store.count_tokens():
            return None
        secret, _ = self.create_token("initial admin", Role.admin)
        token_file.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL and 0600 from the start: the token is never readable by anyone else, not even briefly.
        descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secret + "\n")
        return secret

    def from_token(self, secret: str) -> Principal | None:
        row = self.store.token_by_hash(digest(secret))
        if row is None:
            return None
        # At most one write a minute per token: a write on every request would queue readers behind the
        # runner's event inserts.
        if row["last_used_at"] is None or row["last_used_at"] < (datetime.now(UTC) - TOUCH_EVERY).isoformat():
            self.store.touch_token(row["id"])
        return Principal(token_id=row["id"], name=row["name"], role=Role(row["role"]))

    def open_session(self, principal: Principal) -> tuple[str, str]:
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(hours=self.session_hours)
        self.store.add_session(digest(session_id), principal.token_id, csrf, expires.isoformat())
        return session_id, csrf

    def from_session(self, session_id: str) -> Principal | None:
        row = self.store.session(digest(session_id))
        if row is None:
            return None
        return Principal(token_id=row["token_id"], name=row["name"], role=Role(row["role"]), csrf=row["csrf"])

    def close_session(self, session_id: str) -> None:
        self.store.delete_session(digest(session_id))


def csrf_matches(expected: str | None, presented: str | None) -> bool:
    return expected is not None and presented is not None and hmac.compare_digest(expected, presented)
