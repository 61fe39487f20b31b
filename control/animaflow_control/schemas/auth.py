"""Tokens and sessions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from animaflow_control.schemas.common import Role, refuse_template_markers, refuse_unprintable

# Trimmed, then 1 to 100 printable characters.
TokenName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(refuse_unprintable),
    AfterValidator(refuse_template_markers),
]


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Annotated[str, Field(min_length=10, max_length=200)]


class SessionInfo(BaseModel):
    name: str
    role: Role
    csrf_token: str = Field(description="Send it back in the X-CSRF-Token header on every change")


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TokenName
    role: Role
    expires_at: date | None = Field(
        default=None, description="The token stops working at the start of this day (UTC); none: never"
    )

    @field_validator("expires_at")
    @classmethod
    def in_the_future(cls, value: date | None) -> date | None:
        if value is not None and value <= datetime.now(UTC).date():
            raise ValueError("must be a date after today (UTC)")
        return value


class TokenInfo(BaseModel):
    id: int
    name: str
    role: Role
    created_at: str
    last_used_at: str | None
    revoked: bool
    expires_at: str | None = None
    expired: bool = False


class TokenCreated(TokenInfo):
    token: str = Field(description="Shown once; only its hash is stored")


class TokenList(BaseModel):
    tokens: list[TokenInfo]


class Me(BaseModel):
    name: str
    role: Role
