"""The FastAPI application: routers, static files, the startup that recovers from a restart."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from animaflow_control.api import auth, benchmarks, gateway, health, nodes, runs
from animaflow_control.guards import (
    LimitBody,
    SameOrigin,
    SecurityHeaders,
    inventory_unreadable,
    warn_if_exposed,
)
from animaflow_control.services.container import Services
from animaflow_control.services.files import secure_data_dir
from animaflow_control.services.inventory import InventoryError
from animaflow_control.services.metrics import HttpCounter
from animaflow_control.services.retention import Retention, housekeeping
from animaflow_control.settings import Settings
from animaflow_control.web import pages
from animaflow_control.web.errors import http_error, invalid_request

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "web" / "static"


class CountRequests:
    """Counts requests by route template (not raw path) so that run ids do not explode the label set."""

    def __init__(self, app: ASGIApp, counter: HttpCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.counter.count(scope["method"], route, status)


def announce_admin_token(secret: str, token_file: Path) -> None:
    # Printed once, when the database holds no token (the first start, or a lost database); afterwards
    # only the 0600 file holds it.
    print(
        "\n  AnimaFlow: the database holds no token (first start, or a new database), so an admin token was\n"
        f"  created. It is shown only this once:\n\n    {secret}\n\n  It is also in {token_file} (mode 0600),"
        "\n  replacing any token the file held. Sign in with it, then create operator and viewer tokens\n"
        "  for your team. Lost it? `animaflow admin-token --reset`.\n",
        flush=True,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    warn_if_exposed(settings)
    secure_data_dir(settings)  # before the database opens: its files are created 0600
    services = Services.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        interrupted = services.runs.recover()
        if interrupted:
            log.warning(
                "%d run(s) cut off by the last stop: interrupted once their processes are gone", interrupted
            )
        secret = services.auth.bootstrap_admin(settings.admin_token_file)
        if secret:
            announce_admin_token(secret, settings.admin_token_file)
        yield
        services.begin_shutdown()  # again: a server run without cli.py's signal hook gets here first
        services.runs.shutdown()
        services.store.close()

    app = FastAPI(
        title="AnimaFlow Inference control plane",
        description="Install, start, stop, upgrade, benchmark and switch LLM backends on render-farm nodes.",
        version="0.1.0",
        lifespan=lifespan,
        # /docs and /openapi.json are pages.py's: behind sign-in, from vendored assets. No ReDoc (a CDN script).
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.services = services
    # Pages get HTML error pages, the API its JSON (web/errors.py).
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(InventoryError, inventory_unreadable)
    # The last added runs first: count, then headers on every reply, then size, then Host and Origin.
    app.add_middleware(SameOrigin, settings=settings)
    app.add_middleware(LimitBody, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(CountRequests, counter=services.http)
    for router in (
        health.router,
        auth.router,
        nodes.router,
        gateway.router,
        runs.router,
        benchmarks.router,
        pages.router,
    ):
        app.include_router(router)
    # Prunes old runs at start and hourly; its lifespan runs inside the one above.
    app.include_router(housekeeping(Retention(settings, services.store)))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
