"""The FastAPI application: routers, static files, the startup that recovers from a restart."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from animaflow_control.api import auth, benchmarks, health, nodes, runs
from animaflow_control.services.container import Services
from animaflow_control.services.metrics import HttpCounter
from animaflow_control.settings import Settings
from animaflow_control.web import pages

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "web" / "static"
RESTARTED = "the control plane restarted while this run was in progress"


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
    # Printed once, on the first start only; afterwards only the 0600 file holds it.
    print(
        "\n  AnimaFlow: first start, an admin token was created. It is shown only this once:\n\n"
        f"    {secret}\n\n  It is also in {token_file} (mode 0600). Sign in with it, then create\n"
        "  operator and viewer tokens for your team.\n",
        flush=True,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    services = Services.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        interrupted = services.store.interrupt_unfinished(RESTARTED)
        if interrupted:
            log.warning("marked %d run(s) cut off by the last stop as interrupted", interrupted)
        secret = services.auth.bootstrap_admin(settings.admin_token_file)
        if secret:
            announce_admin_token(secret, settings.admin_token_file)
        yield
        services.runs.shutdown()
        services.store.close()

    app = FastAPI(
        title="AnimaFlow Inference control plane",
        description="Install, start, stop, upgrade, benchmark and switch LLM backends on render-farm nodes.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
    )
    app.state.services = services
    app.add_middleware(CountRequests, counter=services.http)
    for router in (health.router, auth.router, nodes.router, runs.router, benchmarks.router, pages.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        # Swagger UI from the vendored copy: the dashboard never loads anything from a CDN.
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="AnimaFlow API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    return app
