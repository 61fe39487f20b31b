"""The README's first command, `make demo`, minus the steps `make test` has already done (the Debian
packages and the venv): tests/infra/demo.sh brings up the local node, installs and starts llama.cpp with
SmolLM2, puts the studio gateway in front, asks it a question with the openai client, and ends with the
dashboard on 127.0.0.1:8800. Real Chromium then signs in with the token it printed and finds the node on
the grid, llama.cpp running, with its endpoint. `demo.sh down` removes it all at the end."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from browser import CHROMIUM, open_page, screenshot_dir, sign_in_page

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / ".cache" / "logs" / "demo.log"
DEFAULT = yaml.safe_load((ROOT / "roles/llamacpp/defaults/main.yml").read_text())["llamacpp_version"]

pytestmark = pytest.mark.slow


def demo(action: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANIMAFLOW_VENV": str(ROOT / ".venv")}
    env.pop("ANIMAFLOW_STATE_DIR", None)  # the demo's own: .state/ in the checkout, as `make demo` has it
    return subprocess.run(
        ["bash", ROOT / "tests/infra/demo.sh", action], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip


@pytest.fixture
def demo_output(llamacpp_builds: Callable[..., None]) -> Iterator[str]:
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.skip("needs dockerd: run it through `make test`")
    llamacpp_builds(DEFAULT)  # the demo installs the role's default release: copied, not built here
    LOG.parent.mkdir(parents=True, exist_ok=True)
    try:
        up = demo("up")
        LOG.write_text(up.stdout + up.stderr)
        assert up.returncode == 0, f"demo.sh failed; {LOG} ends with:\n{(up.stdout + up.stderr)[-4000:]}"
        yield up.stdout
    finally:
        down = demo("down")
        assert down.returncode == 0, down.stderr


def test_make_demo_ends_with_the_dashboard_showing_the_running_node(demo_output: str) -> None:
    assert re.search(r"^A: .+", demo_output, re.MULTILINE), "no answer from the gateway"
    assert "The dashboard: http://127.0.0.1:8800" in demo_output
    token = re.search(r"sign in with the admin token: (af_\S+)", demo_output)
    assert token, demo_output[-2000:]
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium to look at the dashboard")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright for Python")
    with sync_api.sync_playwright() as playwright:
        problems: list[str] = []
        browser, page = open_page(playwright, problems)
        sign_in_page(page, "http://127.0.0.1:8800", token.group(1))
        cell = page.locator('tr[data-node="local-node"] td[data-backend="llamacpp"]')
        sync_api.expect(cell.locator(".state")).to_have_text("● running")
        sync_api.expect(cell.locator('[data-testid="endpoint"] code')).to_have_text(
            "http://127.0.0.21:8000/v1"
        )
        sync_api.expect(page.locator('tr[data-node="local-node"] [data-testid="hw"] .accel')).to_have_text(
            "CPU"
        )
        sync_api.expect(page.locator('tr[data-node="local-node"] [data-testid="freshness"]')).to_contain_text(
            "states read"
        )
        sync_api.expect(page.locator('[data-testid="gateway"]')).to_contain_text("answering")
        page.screenshot(path=screenshot_dir("demo") / "farm.png", full_page=True)
        browser.close()
    assert problems == []
