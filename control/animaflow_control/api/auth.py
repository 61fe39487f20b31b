"""Signing in to the dashboard, and the admin's management of API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status

from animaflow_control.api.deps import SESSION_COOKIE, Admin, ServicesDep, Viewer, session_scheme
from animaflow_control.schemas.auth import (
    Me,
    SessionInfo,
    SessionRequest,
    TokenCreated,
    TokenInfo,
    TokenList,
    TokenRequest,
)
from animaflow_control.schemas.common import MAX_INT

router = APIRouter(prefix="/api", tags=["auth"])


@router.post("/auth/session", response_model=SessionInfo)
def sign_in(body: SessionRequest, response: Response, services: ServicesDep) -> SessionInfo:
    principal = services.auth.from_token(body.token)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown, expired or revoked token")
    session_id, csrf = services.auth.open_session(principal)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=services.settings.session_hours * 3600,
        httponly=True,
        samesite="strict",
        secure=services.settings.cookie_secure,
        path="/",
    )
    return SessionInfo(name=principal.name, role=principal.role, csrf_token=csrf)


@router.delete("/auth/session", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(
    response: Response,
    services: ServicesDep,
    _: Viewer,
    session_id: Annotated[str | None, Depends(session_scheme)],
) -> Response:
    if session_id:
        services.auth.close_session(session_id)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    response.status_code = status.HTTP_204_NO_CONTENT
    return response


@router.get("/auth/me", response_model=Me)
def me(principal: Viewer) -> Me:
    return Me(name=principal.name, role=principal.role)


def token_info(row: dict) -> TokenInfo:
    return TokenInfo(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked=bool(row["revoked"]),
        expires_at=row["expires_at"],
        expired=bool(row.get("expired")),
    )


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(body: TokenRequest, services: ServicesDep, _: Admin) -> TokenCreated:
    secret, row = services.auth.create_token(body.name, body.role, body.expires_at)
    return TokenCreated(**token_info(row).model_dump(), token=secret)


@router.get("/tokens", response_model=TokenList)
def list_tokens(services: ServicesDep, _: Admin) -> TokenList:
    return TokenList(tokens=[token_info(row) for row in services.store.list_tokens()])


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=MAX_INT)], services: ServicesDep, principal: Admin
) -> Response:
    if token_id == principal.token_id:
        raise HTTPException(status.HTTP_409_CONFLICT, "a token cannot revoke itself; use another admin token")
    if not services.auth.store.revoke_token(token_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no active token {token_id}")
    services.bus.revoked()  # live-log streams opened with it end now, not at their next event
    return Response(status_code=status.HTTP_204_NO_CONTENT)
