"""What a person reads: validation errors in words (the pattern stays in ctx for programs), HTML error
pages for a browser and JSON for the API, the failure that stopped a run, and what an action would take
(the plans the confirmation dialog shows)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from control_helpers import record_run, sign_in
from fastapi.testclient import TestClient

from animaflow_control.catalogue import default_version
from animaflow_control.schemas.common import NAME_PATTERN
from animaflow_control.settings import Settings

HTML = {"Accept": "text/html,application/xhtml+xml"}


def test_a_pattern_error_says_what_the_field_needs_in_words(
    client: TestClient, admin: dict[str, str]
) -> None:
    body = {"action": "upgrade", "backend": "llamacpp", "hosts": ["local"], "version": "b1; rm -rf /"}
    response = client.post("/api/runs", json=body, headers=admin)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "version"]
    assert error["msg"].startswith("use letters, digits and . _ + - only")
    assert "^" not in error["msg"] and "[" not in error["msg"]
    assert error["ctx"]["pattern"] == NAME_PATTERN  # programs still get the constraint
    # A validator's own sentence, without pydantic's "Value error, " in front.
    body = {"action": "upgrade", "backend": "llamacpp", "hosts": ["local"]}
    [error] = client.post("/api/runs", json=body, headers=admin).json()["detail"]
    assert error["msg"] == "upgrade needs the version to install beside the running one"


def test_a_browser_gets_html_error_pages_and_the_api_keeps_json(
    client: TestClient, admin: dict[str, str], token_for: Callable[[str], dict[str, str]]
) -> None:
    viewer = token_for("viewer")
    sign_in(client, admin)
    missing = client.get("/runs/0123456789ab", headers=HTML)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in missing.text and "no run 0123456789ab" in missing.text
    malformed = client.get("/runs/not-a-run", headers=HTML)
    assert malformed.status_code == 422 and "There is no page at /runs/not-a-run" in malformed.text
    nowhere = client.get("/no/such/page", headers=HTML)
    assert nowhere.status_code == 404 and "There is no page at /no/such/page." in nowhere.text
    # The API answers the same mistakes in JSON, whatever the client accepts.
    api = client.get("/api/runs/0123456789ab", headers={**HTML, **admin})
    assert api.status_code == 404 and api.json() == {"detail": "no run 0123456789ab"}

    client.cookies.clear()
    sign_in(client, viewer)
    forbidden = client.get("/tokens", headers=HTML)
    assert forbidden.status_code == 403 and "<h1>Not allowed</h1>" in forbidden.text
    assert "needs the admin role" in forbidden.text and 'href="/"' in forbidden.text


def test_the_failure_that_stopped_a_run_is_the_last_one_not_ignored(
    settings: Settings, client: TestClient, admin: dict[str, str]
) -> None:
    store = client.app.state.services.store  # type: ignore[attr-defined]
    record_run(store, "0000000000f1", "failed", action="upgrade", backend="llamacpp")
    events = [
        (
            "runner_on_failed",
            "Ask the backend for its health",
            {"msg": "connection refused", "ignore_errors": True},
        ),
        ("runner_on_failed", "Check the new version's health", {"msg": "status 503"}),
        ("runner_on_ok", "Roll back to the previous version", {"changed": True}),
        (
            "runner_on_failed",
            "Report the failed upgrade",
            {"msg": "b11312 failed its health check; rolled back"},
        ),
    ]
    for seq, (event, task, data) in enumerate(events, 1):
        row = {"seq": seq, "event": event, "host": "local", "task": task, "stdout": "", "data": data}
        store.add_event("0000000000f1", {**row, "created": "2026-12-01T00:00:00Z"})
    detail = client.get("/api/runs/0000000000f1", headers=admin).json()
    assert detail["failure"] == {
        "host": "local",
        "task": "Report the failed upgrade",
        "message": "b11312 failed its health check; rolled back",
    }
    sign_in(client, admin)
    page = client.get("/runs/0000000000f1").text
    assert "This run failed on <span" in page and "Report the failed upgrade" in page
    # A successful run has no failure, even with an ignored one in its events.
    record_run(store, "0000000000f2", "successful")
    store.add_event("0000000000f2", {**row, "seq": 1, "event": "runner_on_failed", "created": "x"})
    assert client.get("/api/runs/0000000000f2", headers=admin).json()["failure"] is None


def test_plans_name_the_release_and_model_an_action_takes(
    settings: Settings, inventory_file: Path, app_client: Callable, admin_of: Callable
) -> None:
    inventory_file.write_text(
        inventory_file.read_text().replace(
            "        local2: {}",
            "        local2: {llamacpp_version: b9976, ollama_model: qwen2.5, vllm_version: '{{ pinned }}'}",
        )
        + "    animaflow_model: smollm2-135m\n"
    )
    with app_client(settings) as client:
        nodes = {n["name"]: n for n in client.get("/api/nodes", headers=admin_of(settings)).json()["nodes"]}
    assert nodes["local"]["plans"]["llamacpp"] == {
        "version": default_version("llamacpp"),
        "model": "smollm2-135m",
    }
    assert nodes["local2"]["plans"]["llamacpp"]["version"] == "b9976"  # the inventory's pin wins
    assert nodes["local2"]["plans"]["ollama"]["model"] == "qwen2.5"
    assert nodes["local2"]["plans"]["vllm"]["version"] is None  # computed by Ansible: not guessed here
    assert json.dumps(nodes["local"]["plans"]).count("{{") == 0
