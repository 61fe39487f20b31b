"""The dashboard's actions in real Chromium, as an IT admin meets them: every change asks first in a
dialog that says node, backend, version from -> to and model; the grid shows each running backend's
endpoint with copy buttons and how fresh each node's states are; a run page shows elapsed time and the
task each node is on, never a guessed percentage; a canceled run says who canceled it and stops looking
busy; a failed run puts its failing task and message at the top; the farm-level Benchmark and recommend
lands on the recommendation, whose Apply is a confirmed switch; errors read as sentences, and pages a
browser cannot have are HTML pages. The runs are the control plane's stand-in playbooks
(tests/control/playbooks: they hold, or fail, without touching a node); screenshots are kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from browser import CHROMIUM, open_page, screenshot_dir, sign_in_page

from animaflow_control.catalogue import default_version

STANDIN_PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
ENDPOINT = "http://127.0.0.1:8000/v1"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install -y chromium)"
    ),
]


@pytest.fixture
def server(live_server: Callable[..., tuple[str, Path]]) -> tuple[str, Path]:
    """Stand-in playbooks; node local (a CPU node) last read an hour ago with llama.cpp b9976 serving and
    Ollama installed but stopped; node local2 never read."""
    base, state = live_server(STANDIN_PLAYBOOKS)
    (state / "status").mkdir(parents=True)
    running = {
        "installed_versions": ["b9976"],
        "active_version": "b9976",
        "running": True,
        "healthy": True,
        "endpoint": ENDPOINT,
        "model": "smollm2-135m",
    }
    stopped = {
        "installed_versions": ["0.32.15"],
        "active_version": "0.32.15",
        "running": False,
        "healthy": False,
    }
    status = {
        "backends": {"llamacpp": running, "ollama": stopped},
        "active_backend": "llamacpp",
        # As node_status.yml writes it: UTC with a Z.
        "collected_at": (datetime.now(UTC) - timedelta(hours=1, minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    (state / "status" / "local.json").write_text(json.dumps(status))
    (state / "facts").mkdir()
    cpu = {"accelerator": "cpu", "count": 0, "gpus": [], "total_memory_mib": 0}
    facts = {"gpu": cpu, "cpu": {"physical_cores": 2, "memory_total_mib": 24576}, "summary": "CPU node"}
    (state / "facts" / "local.json").write_text(json.dumps(facts))
    return base, state


def runs(base: str, token: str) -> list[dict]:
    return httpx.get(f"{base}/api/runs", headers={"Authorization": f"Bearer {token}"}).json()["runs"]


def test_confirm_follow_cancel_and_read_a_failure(server: tuple[str, Path]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright for Python")
    expect = sync_api.expect
    base, state = server
    shots = screenshot_dir("actions")
    token = (state / "control" / "admin-token").read_text().strip()

    with sync_api.sync_playwright() as playwright:
        # Script errors only: the refused version below is a 422 the console reports.
        problems: list[str] = []
        browser, page = open_page(playwright, problems, console=False, clipboard_for=base)
        sign_in_page(page, base, token)

        # Freshness: local's states are an hour old, local2's were never read.
        local = page.locator('tr[data-node="local"]')
        expect(local.locator('[data-testid="freshness"]')).to_contain_text("1 h 05 min ago")
        expect(page.locator('tr[data-node="local2"] [data-testid="freshness"]')).to_contain_text(
            "not read yet"
        )

        # The running backend's endpoint, copied as an assistant's settings need it.
        cell = local.locator('td[data-backend="llamacpp"]')
        expect(cell.locator('[data-testid="endpoint"] code')).to_have_text(ENDPOINT)
        cell.locator("button[data-copy]", has_text="Copy URL").click()
        expect(cell.locator("button[data-copy]").first).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == ENDPOINT
        cell.locator("button", has_text="Copy model").click()
        assert page.evaluate("navigator.clipboard.readText()") == "smollm2-135m"
        page.screenshot(path=shots / "farm-endpoint-freshness.png", full_page=True)

        # Upgrade asks first: from the running version to the role's default, typed in the dialog.
        dialog = page.locator("dialog#confirm")
        cell.locator('button[data-action="upgrade"]').click()
        expect(dialog).to_be_visible()
        expect(dialog.locator("h2")).to_have_text("Upgrade llama.cpp (llama-server) on local?")
        expect(dialog.locator(".facts")).to_contain_text("b9976 → the one below")
        expect(dialog.locator(".facts")).to_contain_text("smollm2-135m")
        expect(dialog.locator("input")).to_have_value(default_version("llamacpp") or "")
        page.screenshot(path=shots / "confirm-upgrade.png")
        dialog.locator('button[value="back"]').click()
        expect(dialog).to_be_hidden()
        assert runs(base, token) == []  # Back starts nothing

        # A version the API refuses: the notice says what a version may hold, not the pattern.
        cell.locator('button[data-action="upgrade"]').click()
        dialog.locator("input").fill("b11312; rm -rf /")
        dialog.locator('button[value="ok"]').click()
        toast = page.locator("#toast")
        expect(toast).to_contain_text("version: use letters, digits and . _ + - only")
        assert not any(mark in toast.inner_text() for mark in ("^", "$", "{0,", "[A-Za-z"))
        page.screenshot(path=shots / "readable-error.png")

        # Install on a node never read: the dialog names the release the role installs.
        page.locator('tr[data-node="local2"] td[data-backend="ollama"] button[data-action="install"]').click()
        expect(dialog.locator(".facts")).to_contain_text(f"{default_version('ollama')} (the inventory's")
        expect(dialog.locator("h2")).to_have_text("Install Ollama on local2?")
        page.screenshot(path=shots / "confirm-install.png")
        dialog.locator('button[value="ok"]').click()
        page.wait_for_url(f"{base}/runs/*")

        # The run page while the run works: elapsed time, the task the node is on, no percentage.
        expect(page.locator('[data-testid="run-state"]')).to_have_text("running", timeout=60_000)
        expect(page.locator('[data-testid="current-task"]')).to_have_text("now: Wait", timeout=60_000)
        expect(page.locator('[data-testid="elapsed"]')).to_contain_text("elapsed")
        expect(page.locator(".progress-row .bar")).to_have_class("bar state-running")
        assert "%" not in page.locator("#progress").inner_text()
        page.screenshot(path=shots / "run-working.png", full_page=True)

        # Cancel asks too, then says who canceled, and the bar stops looking busy.
        page.click("#cancel")
        expect(dialog.locator("h2")).to_contain_text("Cancel run")
        expect(dialog.locator(".facts")).to_contain_text("install ollama on local2")
        page.screenshot(path=shots / "confirm-cancel.png")
        dialog.locator('button[value="ok"]').click()
        expect(page.locator('[data-testid="run-state"]')).to_have_text("canceled", timeout=60_000)
        expect(page.locator('[data-testid="run-canceled"]')).to_have_text("· canceled by initial admin")
        expect(page.locator(".progress-row .bar")).to_have_class("bar state-canceled")
        expect(page.locator('[data-testid="elapsed"]')).to_contain_text("took")
        expect(page.locator('[data-testid="current-task"]')).to_have_text("")
        page.screenshot(path=shots / "run-canceled.png", full_page=True)

        # The farm-level bake-off: asks, runs on every node, lands on the recommendation.
        page.goto(f"{base}/")
        page.click('[data-testid="benchmark-farm"]')
        expect(dialog.locator("h2")).to_have_text("Benchmark the farm and recommend a backend per node?")
        expect(dialog.locator(".facts")).to_contain_text("2 (local, local2)")
        expect(dialog).to_contain_text("Installs nothing")
        page.screenshot(path=shots / "confirm-benchmark-farm.png")
        dialog.locator('button[value="ok"]').click()
        page.wait_for_url(f"{base}/benchmarks#recommendation", timeout=60_000)
        benchmark_run = runs(base, token)[0]
        assert (benchmark_run["action"], benchmark_run["targets"], benchmark_run["state"]) == (
            "benchmark",
            ["farm"],
            "successful",
        )
        # Nothing measured on a 3-artist CPU studio: the brief's Ollama, installed but stopped on local.
        apply = page.locator('#recommendation [data-testid="apply"] button[data-action="switch"]')
        expect(apply).to_have_text("Apply: switch local to Ollama")
        page.screenshot(path=shots / "recommendation-apply.png", full_page=True)

        # Apply is a normal switch, confirmed; this one fails: the failing task and message at the top.
        apply.click()
        expect(dialog.locator("h2")).to_have_text("Make Ollama the only backend on local?")
        expect(dialog.locator(".facts")).to_contain_text("llama.cpp (llama-server) (running)")
        expect(dialog.locator("select")).to_have_value("0.32.15")
        page.screenshot(path=shots / "confirm-switch.png")
        dialog.locator('button[value="ok"]').click()
        page.wait_for_url(f"{base}/runs/*")
        expect(page.locator('[data-testid="run-state"]')).to_have_text("failed", timeout=60_000)
        failure = page.locator('[data-testid="run-failure"]')
        expect(failure).to_be_visible()
        expect(failure.locator("h2")).to_have_text("This run failed on local")
        expect(failure).to_contain_text("At the task “Wait for the backend's health check”")
        expect(failure).to_contain_text("ollama 0.32.15 did not answer")
        page.screenshot(path=shots / "run-failed.png", full_page=True)
        # The page as loaded later says the same, from the server.
        page.reload()
        expect(failure.locator("h2")).to_have_text("This run failed on local")
        expect(failure).to_contain_text("did not answer")

        # The history says who canceled.
        page.click("nav >> text=Runs")
        expect(page.locator("table.list")).to_contain_text("canceled by initial admin")

        # A new token joins the list without a reload; a viewer meets an HTML page, not JSON, at /tokens.
        page.click("nav >> text=Tokens")
        rows = page.locator("#tokens tbody tr")
        before = rows.count()
        page.fill('#token-form input[name="name"]', "render-wrangler")
        page.click("#token-form button[type=submit]")
        expect(rows).to_have_count(before + 1)
        expect(rows.last).to_contain_text("render-wrangler")
        viewer_token = page.locator("#new-token code").inner_text()
        page.screenshot(path=shots / "token-created.png", full_page=True)

        page.goto(f"{base}/runs/0123456789ab")
        expect(page.locator('[data-testid="error-page"] h1')).to_have_text("Not found")
        expect(page.locator('[data-testid="error-page"]')).to_contain_text("no run 0123456789ab")
        page.screenshot(path=shots / "not-found.png")

        viewer = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
        sign_in_page(viewer, base, viewer_token)
        viewer.goto(f"{base}/tokens")
        expect(viewer.locator('[data-testid="error-page"] h1')).to_have_text("Not allowed")
        expect(viewer.locator('[data-testid="error-page"]')).to_contain_text("needs the admin role")
        viewer.screenshot(path=shots / "forbidden.png")
        browser.close()

    assert problems == []
