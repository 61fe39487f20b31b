"""What a client can send, and what a browser may do with the replies: request size, the Host and
Origin of changes, security headers on every response, and validation errors that never echo input.

Pure ASGI middlewares: they see every request, the streamed ones included, before any body is read.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from animaflow_control.schemas.common import PATTERN_WORDS
from animaflow_control.settings import LOOPBACK_HOSTS, Settings

log = logging.getLogger(__name__)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Only this origin's scripts, styles, images and connections; no plugins, no framing, no <base> tricks.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),  # frame-ancestors for browsers that predate it
)
# Context values that describe the constraint (never the input), kept in 422 replies.
CONSTRAINT_CONTEXT = frozenset(
    {"min_length", "max_length", "pattern", "expected", "ge", "gt", "le", "lt", "multiple_of"}
)
LOC_PART_MAX = 64


async def refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """CSP, nosniff, referrer policy and no framing on every response, the API's and static files' too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyTooLarge(HTTPException):
    pass


class LimitBody:
    """Refuses a body over the limit with 413: by its Content-Length before reading anything, and by
    counting as it arrives when it is streamed (chunked), so that no more than the limit is ever held."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body over {self.max_bytes} bytes"
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await refuse(send, 400, "malformed Content-Length")
                return
            if int(declared) > self.max_bytes:
                await refuse(send, 413, too_large)
                return
        received, exceeded, started = 0, False, False

        async def counted() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge(413, too_large)
            return message

        async def reply(message: Message) -> None:
            nonlocal started
            # Whatever the app made of the interrupted read (FastAPI turns some errors into a 400),
            # the client is told the real reason.
            if exceeded and message["type"] == "http.response.start" and not started:
                started = True
                await refuse(send, 413, too_large)
                return
            if exceeded and started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, reply)
        except BodyTooLarge:
            if not started:
                await refuse(send, 413, too_large)


def host_name(host_header: str) -> str:
    """The name part of a Host header: example.com:8800 -> example.com, [::1]:8800 -> ::1."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


class SameOrigin:
    """State-changing requests must be addressed to an allowed Host (no DNS rebinding) and, when a
    browser sends them, come from this server's own origin or an allowed one (no cross-site requests,
    whatever the cookie's SameSite)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def problem(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        allowed = self.settings.hosts_allowed
        if "*" not in allowed and host_name(host) not in allowed:
            return (
                f"Host {host[:100]!r} is not one this server answers changes for; if clients reach it by this "
                "name, add the name to ANIMAFLOW_ALLOWED_HOSTS"
            )
        origin = headers.get("origin")
        if origin is None:
            return None  # not sent by a browser's cross-site request (curl, scripts, same-origin forms)
        origin = origin.rstrip("/").lower()
        own = {f"{scope['scheme']}://{host.lower()}"}
        if self.settings.cookie_secure:
            own.add(f"https://{host.lower()}")  # TLS ends at a proxy that does not say so
        if origin in own or origin in self.settings.origins_allowed:
            return None
        return (
            f"cross-origin request refused: Origin {origin[:100]!r} is not this server's origin "
            f"({sorted(own)[0]}); if a proxy serves the dashboard under that origin, add it to "
            "ANIMAFLOW_ALLOWED_ORIGINS"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            problem = self.problem(scope)
            if problem is not None:
                await refuse(send, 403, problem)
                return
        await self.app(scope, receive, send)


def readable_message(error: dict[str, Any]) -> str:
    """The message a person reads in the dashboard's notice: the pattern's meaning rather than the pattern
    (which stays in ctx for programs), and a validator's own sentence without pydantic's prefix."""
    message = str(error.get("msg", ""))
    if error.get("type") == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        return PATTERN_WORDS.get(pattern, "is not in the accepted form")
    return message.removeprefix("Value error, ")


def safe_error(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error without the input it was about (a token sent as text/plain, a 50 MB
    string): where, what and which kind, plus the constraint it broke."""
    loc = [part[:LOC_PART_MAX] if isinstance(part, str) else part for part in error.get("loc", ())]
    safe: dict[str, Any] = {"loc": loc, "msg": readable_message(error), "type": error.get("type", "")}
    context = {
        name: value if isinstance(value, int | float) else str(value)
        for name, value in (error.get("ctx") or {}).items()
        if name in CONSTRAINT_CONTEXT
    }
    if context:
        safe["ctx"] = context
    return safe


async def validation_failed(request: Request, error: Exception) -> JSONResponse:
    errors = error.errors() if isinstance(error, RequestValidationError) else []
    return JSONResponse({"detail": [safe_error(item) for item in errors]}, status_code=422)


async def inventory_unreadable(request: Request, error: Exception) -> JSONResponse:
    """Every route that reads the farm answers an unreadable inventory the same way: 503 with the reason."""
    return JSONResponse({"detail": str(error)}, status_code=503)


def warn_if_exposed(settings: Settings) -> None:
    """Loud at start: beyond loopback, tokens and session cookies cross the network, in clear text
    unless a TLS proxy fronts the server."""
    if settings.host in LOOPBACK_HOSTS or settings.host.startswith("127."):
        return
    problems = []
    if not settings.cookie_secure:
        problems.append(
            "no TLS: tokens and session cookies cross the network in clear text. Put a TLS proxy in "
            "front and set ANIMAFLOW_COOKIE_SECURE=true"
        )
    if not settings.allowed_hosts:
        problems.append(
            f"changes are accepted only for Host {settings.host} and loopback names; set "
            "ANIMAFLOW_ALLOWED_HOSTS to the names clients use"
        )
    if not problems:
        return
    message = f"listening on {settings.host}, beyond loopback: " + "; ".join(problems)
    log.warning(message)
    print(f"\n  WARNING: {message}\n", flush=True)
