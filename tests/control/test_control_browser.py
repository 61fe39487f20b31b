"""The dashboard in real Chromium: sign in with the admin token, click Facts on the local node, watch the run
finish live, and see the node's hardware appear on the farm grid."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from browser import CHROMIUM, open_page, screenshot_dir

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install -y chromium)"
    ),
]


@pytest.fixture
def server(live_server: Callable[[Path], tuple[str, Path]]) -> tuple[str, Path]:
    """The real playbooks on the one-node local farm, with two benchmark results for the charts."""
    base, state = live_server(ROOT / "playbooks")
    bench = state / "benchmarks" / "demo"
    bench.mkdir(parents=True)
    for backend, levels in {
        "llamacpp": [(1, 24, 95), (2, 41, 130), (4, 66, 240), (8, 80, 610)],
        "ollama": [(1, 22, 88), (2, 35, 160), (4, 48, 420), (8, 52, 1150)],
    }.items():
        (bench / f"local-{backend}.json").write_text(json.dumps(result(backend, levels, "chat")))
    # llama.cpp with the shared-prefix workload: its control requests (no shared prefix) are a chart line too.
    shared = result("llamacpp", [(1, 23, 60), (2, 40, 90)], "shared_prefix")
    for level, unique_p95 in zip(shared["levels"], (240, 410), strict=True):
        level["prefix"] = {"shared_prefix_tokens": 1024, "unique": {"ttft_ms": {"p95": unique_p95}}}
    (bench / "local-llamacpp-shared_prefix.json").write_text(json.dumps(shared))
    return base, state


def result(backend: str, levels: list[tuple[int, float, float]], workload: str) -> dict:
    """llm_benchmark results (schema_version 2) of the SmolLM2 GGUF the demo serves."""
    return {
        "schema_version": 2,
        "target": {
            "backend": backend,
            "node": "local",
            "model": "smollm2-135m",
            "model_family": "smollm2-135m",
            "model_format": "gguf",
            "quantisation": "Q4_1",
        },
        "workload": {"kind": workload},
        "levels": [
            {
                "concurrency": c,
                "output_tokens_per_s": t,
                "ttft_ms": {"p95": f},
                "goodput_request_per_s": t / 13,
            }
            for c, t, f in levels
        ],
        "goodput": {"request_per_s": max(t for _, t, _ in levels) / 13, "concurrency": levels[-1][0]},
        "max_concurrency_within_slo": {
            "concurrency": 4 if backend == "llamacpp" else 2,
            "slo_ttft_ms": 1000,
            "slo_tpot_ms": 100,
        },
        "finished_at": "2026-01-01T00:00:00Z",
    }


def test_sign_in_click_facts_and_see_the_node_change(server: tuple[str, Path]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright for Python")
    base, state = server
    shots = screenshot_dir("farm-run-benchmarks")
    token = (state / "control" / "admin-token").read_text().strip()

    with sync_api.sync_playwright() as playwright:
        problems: list[str] = []
        browser, page = open_page(playwright, problems)

        page.goto(f"{base}/")
        page.wait_for_url(f"{base}/login")
        page.screenshot(path=shots / "login.png")
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        hardware = page.locator('tr[data-node="local"] [data-testid="hw"]')
        assert "no facts yet" in hardware.inner_text()

        page.click('button[data-action="facts"][data-host="local"]')
        page.wait_for_url(f"{base}/runs/*")
        sync_api.expect(page.locator('[data-testid="run-state"]')).to_have_text("successful", timeout=120_000)
        sync_api.expect(page.locator("#log")).to_contain_text("can run:")
        # No guessed percentage: the tasks each node finished, the time it took, a colour for the end.
        row = page.locator('.progress-row[data-host="local"]')
        sync_api.expect(row.locator(".bar")).to_have_class("bar state-successful")
        sync_api.expect(row.locator(".count")).to_contain_text("tasks done")
        sync_api.expect(page.locator('[data-testid="elapsed"]')).to_contain_text("took")
        assert "%" not in page.locator("#progress").inner_text()
        page.screenshot(path=shots / "run.png", full_page=True)

        page.click("nav >> text=Farm")
        page.wait_for_url(f"{base}/")
        assert "no facts yet" not in hardware.inner_text()
        assert hardware.locator(".accel").inner_text() in ("CPU", "CUDA", "ROCM", "VULKAN")
        freshness = page.locator('tr[data-node="local"] [data-testid="freshness"]')
        sync_api.expect(freshness).to_contain_text("not read yet")

        # The real status playbook reads the node's backends; the grid says how fresh that is.
        page.click('button[data-action="status"][data-host="local"]')
        page.wait_for_url(f"{base}/runs/*")
        sync_api.expect(page.locator('[data-testid="run-state"]')).to_have_text("successful", timeout=120_000)
        page.click("nav >> text=Farm")
        sync_api.expect(freshness).to_contain_text("states read just now")
        page.screenshot(path=shots / "farm.png", full_page=True)

        page.click("nav >> text=Runs")
        sync_api.expect(page.locator(".pill-successful")).to_have_count(2)
        page.screenshot(path=shots / "runs.png", full_page=True)

        page.click("nav >> text=Benchmarks")
        sync_api.expect(page.locator("#chart-throughput canvas")).to_have_count(1)
        sync_api.expect(page.locator("#recommendation .choice").first).to_have_text(
            "llama.cpp (llama-server)"
        )
        # The verdict says what it overrode, with numbers, and what was compared, format and quality.
        reasons = page.locator("#recommendation .reasons")
        sync_api.expect(reasons).to_contain_text("Measurements override the prior, which preferred Ollama")
        sync_api.expect(reasons).to_contain_text("41.0 against 35.0 at concurrency 2")
        compared = page.locator("#recommendation table.compared")
        sync_api.expect(compared).to_contain_text("Q4_1")
        sync_api.expect(compared).to_contain_text("+0.4511 perplexity on Llama-3-8B")
        sync_api.expect(page.locator("table.list")).to_contain_text("shared_prefix")
        sync_api.expect(page.locator("#chart-ttft")).to_contain_text(
            "local · llamacpp · shared_prefix (no shared prefix)"
        )
        page.screenshot(path=shots / "benchmarks.png", full_page=True)
        browser.close()

    assert problems == []
