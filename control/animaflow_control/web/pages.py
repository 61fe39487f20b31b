"""Dashboard pages: rendered on the server from the same services as the API; a little JS makes them live."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from animaflow_control.api.deps import SESSION_COOKIE, OptionalPrincipal, ServicesDep
from animaflow_control.catalogue import backends
from animaflow_control.schemas.common import Action, Role, RunState
from animaflow_control.schemas.nodes import Node
from animaflow_control.services.auth import Principal
from animaflow_control.services.farm import farm_nodes
from animaflow_control.services.gateway import gateway_view
from animaflow_control.services.inventory import InventoryError
from animaflow_control.services.recommendation import recommend_for_farm
from ansible_collections.animaflow.inference.plugins.module_utils.model_formats import format_name

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["format_name"] = format_name

# Pages show what only a signed-in user may see: no cache keeps a copy. (The Content-Security-Policy and
# the other security headers are on every response: guards.SecurityHeaders.)
SECURITY_HEADERS = {"Cache-Control": "no-store"}
NODE_ACTIONS = (Action.facts, Action.status)
BACKEND_ACTIONS = (
    Action.install,
    Action.start,
    Action.stop,
    Action.upgrade,
    Action.benchmark,
    Action.switch,
    Action.uninstall,
)


def cell_actions(node: Node, backend: str) -> tuple[Action, ...]:
    """The buttons that make sense for this backend's last known state on this node."""
    state = node.status.backends.get(backend) if node.status else None
    if node.status is None:
        return BACKEND_ACTIONS  # never checked: offer everything rather than guess
    if state is None or not state.installed_versions:
        return (Action.install,)
    if state.running:
        return (Action.stop, Action.upgrade, Action.benchmark, Action.uninstall)
    return (Action.start, Action.switch, Action.upgrade, Action.uninstall)


def session_principal(request: Request, services: ServicesDep) -> Principal | None:
    session_id = request.cookies.get(SESSION_COOKIE)
    return services.auth.from_session(session_id) if session_id else None


SessionPrincipal = Annotated[Principal | None, Depends(session_principal)]


def render(request: Request, template: str, principal: Principal, page: str, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "page": page,
            "can_operate": principal.can(Role.operator),
            "is_admin": principal.can(Role.admin),
            **context,
        },
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def sign_in_first() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login(request: Request) -> Response:
    response = templates.TemplateResponse(request, "login.html", {"page": "login"})
    response.headers.update(SECURITY_HEADERS)
    return response


@router.get("/", response_class=HTMLResponse)
def farm(request: Request, services: ServicesDep, principal: SessionPrincipal) -> Response:
    if principal is None:
        return sign_in_first()
    try:
        node_list, studio_gateway, error = farm_nodes(services), gateway_view(services), None
    except InventoryError as problem:
        node_list, studio_gateway, error = None, None, str(problem)
    return render(
        request,
        "farm.html",
        principal,
        "farm",
        nodes=node_list,
        gateway=studio_gateway,
        error=error,
        backends=backends(),
        node_actions=NODE_ACTIONS,
        cell_actions=cell_actions,
    )


@router.get("/runs", response_class=HTMLResponse)
def run_history(request: Request, services: ServicesDep, principal: SessionPrincipal) -> Response:
    if principal is None:
        return sign_in_first()
    return render(request, "runs.html", principal, "runs", runs=services.store.list_runs(200))


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request,
    services: ServicesDep,
    principal: SessionPrincipal,
    run_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{12}$")],
) -> Response:
    if principal is None:
        return sign_in_first()
    run = services.store.get_run(run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id}")
    failure = services.store.last_failure(run_id) if run["state"] == RunState.failed else None
    return render(request, "run.html", principal, "runs", run=run, failure=failure)


@router.get("/benchmarks", response_class=HTMLResponse)
def benchmark_page(request: Request, services: ServicesDep, principal: SessionPrincipal) -> Response:
    if principal is None:
        return sign_in_first()
    results, skipped = services.reports.benchmarks()
    try:
        recommendation, inventory_error = (
            recommend_for_farm(services.inventory.read(), services.reports),
            None,
        )
        # Each node's states: a recommendation's Apply switches to the choice where it is installed.
        nodes = {node.name: node for node in farm_nodes(services).nodes}
    except InventoryError as error:
        recommendation, inventory_error, nodes = None, str(error), {}
    return render(
        request,
        "benchmarks.html",
        principal,
        "benchmarks",
        results=results,
        skipped=skipped,
        tunings=services.reports.tunings(),
        run_pages={result.run_id for result in results if services.store.get_run(result.run_id)},
        recommendation=recommendation,
        inventory_error=inventory_error,
        nodes=nodes,
        titles={name: spec.get("title", name) for name, spec in backends().items()},
    )


@router.get("/tokens", response_class=HTMLResponse)
def token_page(request: Request, services: ServicesDep, principal: SessionPrincipal) -> Response:
    if principal is None:
        return sign_in_first()
    if not principal.can(Role.admin):
        raise HTTPException(403, "needs the admin role")
    return render(
        request, "tokens.html", principal, "tokens", tokens=services.store.list_tokens(), roles=list(Role)
    )


def docs_allowed(services: ServicesDep, principal: Principal | None) -> bool:
    return principal is not None or services.settings.public_docs


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request, services: ServicesDep, principal: OptionalPrincipal) -> Response:
    # Swagger UI from the vendored copy, started by a static script: the CSP allows no inline script.
    if not docs_allowed(services, principal):
        return sign_in_first()
    csrf = principal.csrf if principal else None
    response = templates.TemplateResponse(request, "docs.html", {"csrf": csrf})
    response.headers.update(SECURITY_HEADERS)
    return response


@router.get("/openapi.json")
def openapi_schema(request: Request, services: ServicesDep, principal: OptionalPrincipal) -> JSONResponse:
    # The schema maps every route and field: for signed-in users unless ANIMAFLOW_PUBLIC_DOCS opens it.
    if not docs_allowed(services, principal):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "sign in or send a bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return JSONResponse(request.app.openapi())
