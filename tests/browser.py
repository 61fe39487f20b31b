"""What every browser test shares: Chromium, its flags, the screenshots folder and the sign-in form
(tests/ is on sys.path: tests/conftest.py's directory)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
# Chromium on a machine with no way out: without the background-networking flags it keeps trying.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def screenshot_dir(test_name: str) -> Path:
    """Where a browser test keeps its screenshots: $ANIMAFLOW_SCREENSHOTS, else .cache/screenshots, one
    folder per test; they stay after the run, as the test's artifacts."""
    root = Path(
        os.environ.get("ANIMAFLOW_SCREENSHOTS") or Path(__file__).resolve().parents[1] / ".cache/screenshots"
    )
    folder = root / test_name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in_page(page: Any, base: str, token: str) -> None:
    """The login form, as a person fills it."""
    page.goto(f"{base}/login")
    page.fill("#token", token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_url(f"{base}/")


def open_page(
    playwright: Any, problems: list[str], console: bool = True, clipboard_for: str = ""
) -> tuple[Any, Any]:
    """Chromium and one 1440x900 page (in Los Angeles time) whose script errors (and, with console, console errors: a failed
    request is one) land in problems; clipboard_for grants that origin the clipboard."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    # A studio far from UTC: a time written without its zone would show hours off here.
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="America/Los_Angeles")
    if clipboard_for:
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=clipboard_for)
    page = context.new_page()
    if console:
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return browser, page
