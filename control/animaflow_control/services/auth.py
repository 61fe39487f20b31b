"""Bearer tokens with roles, dashboard sessions and their CSRF tokens.

Tokens and session ids are 256-bit random strings, so a plain SHA-256 is a sufficient hash to store:
there is nothing to brute-force that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from animaflow_control.schemas.common import Role
from animaflow_control.services.files import write_private
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

    def create_token(self, name: str, role: Role, expires_on: date | None = None) -> tuple[str, dict]:
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        # A token expiring on a date stops working at the start of that day (UTC).
        expires_at = datetime.combine(expires_on, time(), UTC) if expires_on else None
        return secret, self.store.add_token(name, role.value, digest(secret), expires_at)

    def bootstrap_admin(self, token_file: Path) -> str | None:
        """When the database holds no token (the first start, or a database lost or replaced), create an
        admin token and write it to the file; returns it so the console can show it once.

        A token file left from a lost database is replaced, not trusted again: that token may have been
        revoked since, and the lost database was the only record of it. The file is written before the
        token is stored, so a crash in between leaves no token, and the next start simply does this again.
        """
        if self.store.count_tokens():
            return None
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        write_private(token_file, secret + "\n")
        self.store.add_token("initial admin", Role.admin.value, digest(secret))
        return secret

    def reset_admin(self, token_file: Path) -> tuple[str, int | None]:
        """`animaflow admin-token --reset`: a new admin token in the file; the token the file held before
        is revoked. Returns the new secret and the revoked token's id (None when it was not in the database)."""
        old = token_file.read_text(encoding="utf-8").strip() if token_file.exists() else ""
        old_id = self.store.token_id(digest(old)) if old else None
        secret, row = self.create_token("admin (reset)", Role.admin)
        try:
            write_private(token_file, secret + "\n")
        except BaseException:
            self.store.revoke_token(row["id"])  # nobody can ever see it
            raise
        if old_id is not None and not self.store.revoke_token(old_id):
            old_id = None  # already revoked
        return secret, old_id

    def file_token(self, token_file: Path) -> dict | None:
        """The active token the admin-token file holds, if any."""
        if not token_file.exists():
            return None
        return self.store.token_by_hash(digest(token_file.read_text(encoding="utf-8").strip()))

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
