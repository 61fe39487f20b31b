"""The studio gateway on the dashboard and the API: the URL assistants use, the model names, the key names
(never a key), each node's deployment with its last reported backend and health, and whether the gateway
answers. The routing is the role's own (module_utils/gateway_routes.py); molecule/gateway runs the real
proxy."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from control_helpers import sign_in
from fastapi.testclient import TestClient

from animaflow_control.settings import Settings

APP_KEY = "compositor-key-never-shown-0123"
GATEWAY_INVENTORY = f"""\
all:
  vars:
    ansible_connection: local
    animaflow_models: [{{name: tiny, format: gguf}}, {{name: tiny-b, format: gguf}}]
    animaflow_model: tiny
  children:
    farm:
      hosts:
        n1: {{animaflow_bind_address: 127.0.0.121}}
        n2: {{animaflow_bind_address: 0.0.0.0, ansible_host: n2.farm.example, animaflow_model: tiny-b}}
        n3: {{animaflow_model: not-in-the-catalogue}}
    gateway:
      hosts:
        gw: {{animaflow_bind_address: 127.0.0.123, gateway_port: 4123, gateway_app_keys: {{compositor: {APP_KEY}}}}}
"""


@pytest.fixture
def gateway_settings(tmp_path: Path) -> Settings:
    inventory = tmp_path / "gateway-hosts.yml"
    inventory.write_text(GATEWAY_INVENTORY, encoding="utf-8")
    state = tmp_path / "state"
    (state / "status").mkdir(parents=True)
    (state / "status" / "n1.json").write_text(
        json.dumps({"active_backend": "ollama", "backends": {"ollama": {"running": True, "healthy": True}}})
    )
    return Settings(
        inventory=inventory, state_dir=state, playbook_dir=Path(__file__).resolve().parents[2] / "playbooks"
    )


@pytest.fixture
def liveliness() -> Iterator[None]:
    """STAND-IN for the proxy's /health/liveliness on the gateway's address (the real LiteLLM proxy is not in
    the control plane's venv; molecule/gateway checks the real one): a plain HTTP server answering 200."""

    class Alive(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health/liveliness" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.123", 4123), Alive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield
    server.shutdown()
    server.server_close()


def test_the_api_shows_the_gateway_an_assistant_uses(
    gateway_settings: Settings, app_client: Callable, admin_of: Callable, liveliness: None
) -> None:
    with app_client(gateway_settings) as client:
        answer = client.get("/api/gateway", headers=admin_of(gateway_settings))
    assert answer.status_code == 200, answer.text
    gateway = answer.json()
    assert APP_KEY not in answer.text
    assert gateway["configured"] and gateway["hosts"] == ["gw"]
    assert gateway["url"] == "http://127.0.0.123:4123/v1" and gateway["answering"] is True
    assert gateway["metrics_url"] == "http://127.0.0.123:4123/metrics/"
    assert gateway["models"] == ["tiny", "tiny-b"] and gateway["key_names"] == ["studio", "compositor"]
    assert gateway["deployments"] == [
        {
            "node": "n1",
            "model": "tiny",
            "api_base": "http://127.0.0.121:8000/v1",
            "backend": "ollama",
            "healthy": True,
        },
        {
            "node": "n2",
            "model": "tiny-b",
            "api_base": "http://n2.farm.example:8000/v1",
            "backend": None,
            "healthy": None,
        },
    ]
    assert gateway["left_out"] == ["n3 serves not-in-the-catalogue, which animaflow_models does not list"]


def test_the_farm_page_shows_the_gateway_and_says_when_it_does_not_answer(
    gateway_settings: Settings, app_client: Callable, admin_of: Callable
) -> None:
    with app_client(gateway_settings) as client:
        sign_in(client, admin_of(gateway_settings))
        page = client.get("/").text
        assert client.get("/api/gateway", headers=admin_of(gateway_settings)).json()["answering"] is False
    assert 'data-testid="gateway"' in page and "http://127.0.0.123:4123/v1" in page
    assert "● not answering" in page and 'data-deployment="n2"' in page and APP_KEY not in page
    assert "http://127.0.0.123:4123/metrics/" in page


def test_metrics_switched_off_are_not_offered(
    gateway_settings: Settings, app_client: Callable, admin_of: Callable
) -> None:
    inventory = Path(gateway_settings.inventory)
    inventory.write_text(
        inventory.read_text().replace("gateway_port: 4123,", "gateway_port: 4123, gateway_metrics: false,")
    )
    with app_client(gateway_settings) as client:
        assert client.get("/api/gateway", headers=admin_of(gateway_settings)).json()["metrics_url"] is None


def test_without_a_gateway_group_nothing_is_shown(client: TestClient, admin: dict[str, str]) -> None:
    assert client.get("/api/gateway", headers=admin).json() == {
        "configured": False,
        "hosts": [],
        "url": None,
        "answering": None,
        "metrics_url": None,
        "models": [],
        "key_names": [],
        "deployments": [],
        "left_out": [],
    }
    sign_in(client, admin)
    assert 'data-testid="gateway"' not in client.get("/").text
