"""Errors a person reads: a page a browser asked for gets an HTML page with the reason and a way on
(not the API's raw JSON); API clients keep the JSON answers."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from animaflow_control.guards import validation_failed
from animaflow_control.web.pages import SECURITY_HEADERS, session_principal, templates

# Paths that answer programs: their errors stay JSON whatever the client accepts.
API_PATHS = ("/api/", "/static/", "/openapi.json", "/healthz", "/metrics")
TITLES = {
    401: "Sign in first",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    413: "Too large",
    422: "Not found",
}


def wants_page(request: Request) -> bool:
    return not request.url.path.startswith(API_PATHS) and "text/html" in request.headers.get("accept", "")


def error_page(
    request: Request, status_code: int, detail: str, headers: dict[str, str] | None = None
) -> Response:
    principal = session_principal(request, request.app.state.services)
    context: dict[str, Any] = {
        "principal": principal,
        "page": "error",
        "status_code": status_code,
        "title": TITLES.get(status_code, "Something went wrong"),
        "detail": detail,
    }
    response = templates.TemplateResponse(request, "error.html", context, status_code=status_code)
    response.headers.update({**SECURITY_HEADERS, **(headers or {})})
    return response


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if not wants_page(request):
        return await http_exception_handler(request, error)
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    if error.status_code == 404 and detail == "Not Found":
        detail = f"There is no page at {request.url.path}."
    return error_page(request, error.status_code, detail, dict(error.headers or {}))


async def invalid_request(request: Request, error: Exception) -> Response:
    if not wants_page(request):
        return await validation_failed(request, error)
    # A page's only inputs are in its address (a run id): a malformed one names no page.
    errors = error.errors() if isinstance(error, RequestValidationError) else []
    what = ", ".join(str(item.get("loc", ["", "?"])[-1]) for item in errors) or "address"
    return error_page(
        request, 422, f"There is no page at {request.url.path} (the {what} in it is not valid)."
    )
