"""Dashboard pages: sign-in redirect, rendering with a session, security headers, vendored assets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from control_helpers import sign_in
from fastapi.testclient import TestClient


@pytest.mark.parametrize("page", ["/", "/runs", "/benchmarks", "/tokens"])
def test_pages_redirect_to_sign_in_without_a_session(client: TestClient, page: str) -> None:
    response = client.get(page, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_pages_render_for_a_signed_in_admin(client: TestClient, admin: dict[str, str]) -> None:
    csrf = sign_in(client, admin)
    farm = client.get("/")
    assert farm.status_code == 200
    assert "default-src 'self'" in farm.headers["content-security-policy"]
    assert f'<meta name="csrf-token" content="{csrf}">' in farm.text
    assert 'data-node="local"' in farm.text and 'data-action="facts"' in farm.text
    assert "llama.cpp (llama-server)" in farm.text
    for page in ("/runs", "/benchmarks", "/tokens", "/login"):
        assert client.get(page).status_code == 200, page
    assert "uPlot.iife.min.js" in client.get("/benchmarks").text


def test_an_unreadable_inventory_is_503_on_the_api_and_a_message_on_the_farm_page(
    client: TestClient, admin: dict[str, str], inventory_file: Path
) -> None:
    inventory_file.unlink()
    nodes = client.get("/api/nodes", headers=admin)
    assert nodes.status_code == 503 and "does not exist" in nodes.json()["detail"]
    sign_in(client, admin)
    farm = client.get("/")
    assert farm.status_code == 200 and '<p class="error card">inventory ' in farm.text


def test_viewer_sees_disabled_buttons_and_no_token_page(
    client: TestClient, token_for: Callable[[str], dict[str, str]]
) -> None:
    sign_in(client, token_for("viewer"))
    farm = client.get("/").text
    assert "read-only" in farm
    assert client.get("/tokens").status_code == 403


def test_static_assets_are_vendored(client: TestClient) -> None:
    for asset in (
        "/static/app.css",
        "/static/app.js",
        "/static/run.js",
        "/static/vendor/uplot/uPlot.iife.min.js",
    ):
        assert client.get(asset).status_code == 200, asset


def test_grid_cells_offer_the_actions_that_fit_the_backend_state() -> None:
    from animaflow_control.schemas.nodes import Node, NodeStatus
    from animaflow_control.web.pages import BACKEND_ACTIONS, cell_actions

    def node(status: dict | None) -> Node:
        return Node(
            name="n",
            groups=[],
            busy_run=None,
            facts=None,
            runnable_backends=[],
            status=NodeStatus.model_validate(status) if status is not None else None,
        )

    running = {"installed_versions": ["b1"], "active_version": "b1", "running": True, "healthy": True}
    stopped = {**running, "running": False}
    assert cell_actions(node(None), "llamacpp") == BACKEND_ACTIONS
    assert [a.value for a in cell_actions(node({"backends": {}}), "llamacpp")] == ["install"]
    assert [a.value for a in cell_actions(node({"backends": {"llamacpp": running}}), "llamacpp")] == [
        "stop",
        "upgrade",
        "benchmark",
        "uninstall",
    ]
    assert [a.value for a in cell_actions(node({"backends": {"llamacpp": stopped}}), "llamacpp")] == [
        "start",
        "switch",
        "upgrade",
        "uninstall",
    ]
