"""Tokens and sessions."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from animaflow_control.schemas.common import Role, SafeText


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Annotated[str, Field(min_length=10, max_length=200)]


class SessionInfo(BaseModel):
    name: str
    role: Role
    csrf_token: str = Field(description="Send it back in the X-CSRF-Token header on every change")


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[SafeText, Field(min_length=1)]
    role: Role


class TokenInfo(BaseModel):
    id: int
    name: str
    role: Role
    created_at: str
    last_used_at: str | None
    revoked: bool


class TokenCreated(TokenInfo):
    token: str = Field(description="Shown once; only its hash is stored")


class TokenList(BaseModel):
    tokens: list[TokenInfo]


class Me(BaseModel):
    name: str
    role: Role
