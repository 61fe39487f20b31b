"""Dependencies the routes share: the services, and who is calling with which role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from animaflow_control.schemas.common import Role
from animaflow_control.services.auth import Principal, csrf_matches
from animaflow_control.services.container import Services

SESSION_COOKIE = "animaflow_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = HTTPBearer(auto_error=False, description="An API token (af_...) created by an admin")
session_scheme = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="Dashboard session")


# The dependencies are async on purpose: FastAPI runs sync ones in the thread pool, one hop each, and
# these are a dict lookup and indexed SQLite reads (WAL: never blocked by the runner's writes; the
# last-used stamp is written at most once a minute per token).
async def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def optional_principal(
    request: Request,
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    session_id: Annotated[str | None, Depends(session_scheme)],
) -> Principal | None:
    if bearer is not None:
        principal = services.auth.from_token(bearer.credentials)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid, expired or revoked token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return principal
    if session_id is None:
        return None
    principal = services.auth.from_session(session_id)
    # A cookie rides along with any request the browser makes, so changes also need the CSRF token,
    # which only pages of this origin can read. Bearer tokens are never sent implicitly: no check needed.
    if (
        principal is not None
        and request.method not in SAFE_METHODS
        and not csrf_matches(principal.csrf, request.headers.get(CSRF_HEADER))
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing or wrong {CSRF_HEADER} header")
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def require(role: Role) -> Callable[[Principal | None], Awaitable[Principal]]:
    async def check(principal: OptionalPrincipal) -> Principal:
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "sign in or send a bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.can(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"needs the {role.value} role, token has {principal.role.value}"
            )
        return principal

    return check


Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Operator = Annotated[Principal, Depends(require(Role.operator))]
Admin = Annotated[Principal, Depends(require(Role.admin))]
