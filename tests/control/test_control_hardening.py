"""What a client can send: bounded bodies, 422s that never echo input, bounded integers, printable token
names, no third-party scripts and a CSP everywhere, docs behind sign-in, and Host and Origin checks."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from control_helpers import record_run, sign_in, variant
from fastapi.testclient import TestClient

from animaflow_control.app import create_app
from animaflow_control.guards import LimitBody
from animaflow_control.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
OWN_ORIGIN = "http://127.0.0.1:8800"  # what conftest's client addresses
TOO_BIG = 2**64  # beyond SQLite's 64-bit integers
RUN_ID = "0123456789ab"


def add_finished_run(client: TestClient) -> None:
    record_run(client.app.state.services.store, RUN_ID, "successful")


# 1. Request bodies are bounded, and a 422 never echoes what was sent.


def test_an_oversized_body_is_refused_by_its_content_length_without_an_echo(client: TestClient) -> None:
    # Anonymous, as in the report: a 300 KB sign-in once came back as a 300 KB 422.
    response = client.post("/api/auth/session", json={"token": "af_" + "x" * 300_000})
    assert response.status_code == 413
    assert "over 262144 bytes" in response.json()["detail"]
    assert len(response.content) < 200


def test_a_streamed_body_is_counted_and_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"token": "af_'
        for _ in range(10):
            yield b"x" * 64 * 1024
        yield b'"}'

    response = client.post(
        "/api/auth/session", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers  # sent chunked
    assert response.status_code == 413
    assert len(response.content) < 200


def test_the_body_limit_stops_reading_at_the_limit() -> None:
    """A chunked body of 64 MB: the middleware reads no more than the limit plus one chunk."""
    chunk, received, replies = 64 * 1024, 0, []

    async def receive() -> dict:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": b"x" * chunk, "more_body": received < 1024}

    async def send(message: dict) -> None:
        replies.append(message)

    async def app(
        scope: dict, receive: Callable, send: Callable
    ) -> None:  # reads it all, as a JSON route does
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"transfer-encoding", b"chunked")]}
    asyncio.run(LimitBody(app, max_bytes=256 * 1024)(scope, receive, send))
    assert received == 5
    assert replies[0]["status"] == 413
    assert b"read it all" not in b"".join(message.get("body", b"") for message in replies)


def test_the_body_limit_is_a_setting(settings: Settings, app_client: Callable, admin_of: Callable) -> None:
    with app_client(variant(settings, max_body_bytes=1024)) as client:
        body = {"name": "n" * 100, "role": "viewer", "padding": "p" * 2000}
        assert client.post("/api/tokens", json=body, headers=admin_of(settings)).status_code == 413
        small = client.post("/api/tokens", json={"name": "bot", "role": "viewer"}, headers=admin_of(settings))
        assert small.status_code == 201


def test_validation_errors_do_not_echo_the_input(client: TestClient) -> None:
    secret = "af_" + "s" * 43
    # A sign-in sent as text/plain once came back with the token in the 422.
    as_text = client.post(
        "/api/auth/session", content=f'{{"token": "{secret}"}}', headers={"Content-Type": "text/plain"}
    )
    assert as_text.status_code == 422
    assert secret not in as_text.text
    too_long = client.post("/api/auth/session", json={"token": secret * 5})
    assert too_long.status_code == 422
    assert secret not in too_long.text
    [error] = too_long.json()["detail"]
    assert error == {
        "loc": ["body", "token"],
        "msg": "String should have at most 200 characters",
        "type": "string_too_long",
        "ctx": {"max_length": 200},
    }
    not_json = client.post(
        "/api/auth/session", content=f"token={secret}", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    assert secret not in not_json.text
    assert all("input" not in item for item in not_json.json()["detail"])


# 2. Integers are bounded: no 500 and no broken stream past 64 bits.


@pytest.mark.parametrize(
    ("method", "url", "headers"),
    [
        ("DELETE", f"/api/tokens/{TOO_BIG}", {}),
        ("GET", f"/api/runs?offset={TOO_BIG}", {}),
        ("GET", f"/api/runs?limit={TOO_BIG}", {}),
        ("GET", f"/api/runs/{RUN_ID}/events?after={TOO_BIG}", {}),
        ("GET", f"/api/runs/{RUN_ID}/events", {"Last-Event-ID": str(TOO_BIG)}),
        ("GET", f"/api/runs/{RUN_ID}/events?after={2**53}", {}),
    ],
)
def test_integers_beyond_the_bounds_get_422(
    client: TestClient, admin: dict[str, str], method: str, url: str, headers: dict[str, str]
) -> None:
    add_finished_run(client)
    response = client.request(method, url, headers={**admin, **headers})
    assert response.status_code == 422, response.text


def test_the_largest_bounded_event_number_still_resumes(client: TestClient, admin: dict[str, str]) -> None:
    add_finished_run(client)
    with client.stream("GET", f"/api/runs/{RUN_ID}/events?after={2**53 - 1}", headers=admin) as stream:
        assert stream.status_code == 200
        assert "event: end" in "".join(stream.iter_text())


# 3. Token names are printable.


@pytest.mark.parametrize(
    "name",
    [
        "pipeline\nbot",
        "bot\x00",
        "invoice\u202egpj.exe",  # right-to-left override
        "zero\u200bwidth",  # a format character (Cf)
        "line\u2028separator",
        "tab\there",
        "",
        "   ",
        "\t\n",
        "x" * 101,
    ],
)
def test_token_names_must_be_printable(client: TestClient, admin: dict[str, str], name: str) -> None:
    response = client.post("/api/tokens", json={"name": name, "role": "viewer"}, headers=admin)
    assert response.status_code == 422, response.text
    assert len(client.get("/api/tokens", headers=admin).json()["tokens"]) == 1


def test_token_names_are_trimmed_and_may_be_any_language(client: TestClient, admin: dict[str, str]) -> None:
    for sent, kept in (
        ("  render bot  ", "render bot"),
        ("Zoë's ✓ 名前", "Zoë's ✓ 名前"),
        ("x" * 100, "x" * 100),
    ):
        created = client.post("/api/tokens", json={"name": sent, "role": "viewer"}, headers=admin)
        assert created.status_code == 201, created.text
        assert created.json()["name"] == kept


# 4. Vendored assets only, a CSP on every response, docs behind sign-in.

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
THIRD_PARTY = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    responses = [
        client.get("/healthz"),
        client.get("/api/nodes"),  # 401
        client.get("/static/app.js"),
        client.get("/login"),
        client.get("/no-such-page"),
        client.post("/api/auth/session", json={"token": "x" * 300_000}),  # 413
        client.post("/api/auth/session", json={}, headers={"Origin": "https://evil.example"}),  # 403
        client.post("/api/auth/session", content="{", headers={"Content-Type": "application/json"}),  # 422
    ]
    for response in responses:
        csp = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp, response.request.url
        assert "frame-ancestors 'none'" in csp
        assert "object-src 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"


def test_no_page_runs_inline_or_third_party_code(client: TestClient, admin: dict[str, str]) -> None:
    sign_in(client, admin)
    for page in ("/", "/runs", "/benchmarks", "/tokens", "/login", "/docs"):
        response = client.get(page)
        assert response.status_code == 200, page
        assert not INLINE_SCRIPT.search(response.text), page
        assert " style=" not in response.text, page  # inline styles are refused by the CSP too
        assert not THIRD_PARTY.search(response.text), page


def test_redoc_is_gone_and_docs_need_a_sign_in(
    client: TestClient, token_for: Callable[[str], dict[str, str]]
) -> None:
    assert client.get("/redoc").status_code == 404
    assert client.get("/docs", follow_redirects=False).headers["location"] == "/login"
    assert client.get("/openapi.json").status_code == 401
    viewer = token_for("viewer")
    assert "/static/docs.js" in client.get("/docs", headers=viewer).text
    assert "/api/runs" in client.get("/openapi.json", headers=viewer).json()["paths"]
    sign_in(client, viewer)  # the dashboard's API link, with the session cookie
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_public_docs_is_a_setting(settings: Settings, app_client: Callable) -> None:
    with app_client(variant(settings, public_docs=True)) as client:
        assert client.get("/docs").status_code == 200
        assert "/api/runs" in client.get("/openapi.json").json()["paths"]
        assert client.get("/api/runs").status_code == 401  # only the docs open up


# 5. State-changing requests come from this origin and for an allowed Host.


def test_a_cross_origin_change_is_refused_with_the_fix(client: TestClient, admin: dict[str, str]) -> None:
    body = {"name": "bot", "role": "viewer"}
    for origin in ("https://evil.example", "null", "http://127.0.0.1:9999", "https://127.0.0.1:8800"):
        refused = client.post("/api/tokens", json=body, headers={**admin, "Origin": origin})
        assert refused.status_code == 403, origin
        assert "ANIMAFLOW_ALLOWED_ORIGINS" in refused.json()["detail"]
    # Signing in from another site is refused as well (a login CSRF).
    token = admin["Authorization"].removeprefix("Bearer ")
    cross_site = client.post(
        "/api/auth/session", json={"token": token}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    assert "set-cookie" not in cross_site.headers
    assert client.post("/api/tokens", json=body, headers={**admin, "Origin": OWN_ORIGIN}).status_code == 201
    assert client.post("/api/tokens", json=body, headers=admin).status_code == 201  # no Origin: not a browser
    # Reads are not changes: a cross-origin GET is answered (the browser keeps the reply from the page).
    assert client.get("/api/nodes", headers={**admin, "Origin": "https://evil.example"}).status_code == 200


def test_allowed_origins_is_a_setting(settings: Settings, app_client: Callable, admin_of: Callable) -> None:
    proxied = variant(settings, allowed_origins="https://farm.example, https://ops.example/")
    with app_client(proxied) as client:
        for origin in ("https://farm.example", "https://ops.example"):
            headers = {**admin_of(settings), "Origin": origin}
            assert (
                client.post(
                    "/api/tokens", json={"name": "bot", "role": "viewer"}, headers=headers
                ).status_code
                == 201
            )


def test_a_change_for_another_host_is_refused(client: TestClient, admin: dict[str, str]) -> None:
    body = {"name": "bot", "role": "viewer"}
    # DNS rebinding: the attacker's name resolves to this server, its page is "same-origin" with itself.
    rebound = {**admin, "Host": "evil.example:8800", "Origin": "http://evil.example:8800"}
    refused = client.post("/api/tokens", json=body, headers=rebound)
    assert refused.status_code == 403
    assert "ANIMAFLOW_ALLOWED_HOSTS" in refused.json()["detail"]
    for host in ("localhost:8800", "127.0.0.1", "[::1]:8800"):
        assert client.post("/api/tokens", json=body, headers={**admin, "Host": host}).status_code == 201, host
    assert (
        client.get("/healthz", headers={"Host": "evil.example"}).status_code == 200
    )  # reads are not changes


def test_allowed_hosts_is_a_setting(settings: Settings, app_client: Callable, admin_of: Callable) -> None:
    with app_client(variant(settings, allowed_hosts="farm.example")) as client:
        body, admin = {"name": "bot", "role": "viewer"}, admin_of(settings)
        assert (
            client.post("/api/tokens", json=body, headers={**admin, "Host": "farm.example"}).status_code
            == 201
        )
        # The list replaces the default: loopback names are allowed only when listed.
        assert client.post("/api/tokens", json=body, headers=admin).status_code == 403
    with app_client(variant(settings, allowed_hosts="*")) as client:
        assert (
            client.post("/api/tokens", json=body, headers={**admin, "Host": "any.example"}).status_code == 201
        )


def test_binding_beyond_loopback_without_tls_warns_loudly(
    settings: Settings, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.WARNING):
        create_app(variant(settings, host="0.0.0.0"))
    printed = capsys.readouterr().out
    assert (
        "WARNING" in printed and "ANIMAFLOW_COOKIE_SECURE" in printed and "ANIMAFLOW_ALLOWED_HOSTS" in printed
    )
    assert any(record.levelno == logging.WARNING and "no TLS" in record.message for record in caplog.records)

    caplog.clear()
    create_app(variant(settings, host="0.0.0.0", cookie_secure=True, allowed_hosts="farm.example"))
    create_app(settings)  # loopback
    assert "WARNING" not in capsys.readouterr().out
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium")
def test_swagger_ui_runs_under_the_csp_in_a_browser(live_server: Callable[..., tuple[str, Path]]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright for Python")
    base, state = live_server(ROOT / "playbooks")
    token = (state / "control" / "admin-token").read_text().strip()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"]
        )
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{base}/login")
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.click("nav >> text=API")
        page.wait_for_url(f"{base}/docs")
        sync_api.expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
        assert page.locator(".opblock").count() > 10
        browser.close()
    assert problems == []  # a CSP violation is a console error
