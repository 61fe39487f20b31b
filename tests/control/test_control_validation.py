"""Every input is validated; nothing that looks like a template ever reaches Ansible."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

INJECTIONS = ["{{ lookup('pipe', 'id') }}", "{% for x in y %}", "{# note #}", "1.0{{x}}"]


@pytest.mark.parametrize("marker", INJECTIONS)
@pytest.mark.parametrize("field", ["version", "model", "hosts"])
def test_template_markers_are_refused_with_422(
    client: TestClient, admin: dict[str, str], field: str, marker: str
) -> None:
    body: dict = {"action": "upgrade", "backend": "llamacpp", "hosts": ["local"], "version": "1.0"}
    body[field] = [marker] if field == "hosts" else marker
    response = client.post("/api/runs", json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert client.get("/api/runs", headers=admin).json()["runs"] == []


def test_template_markers_in_a_token_name_are_refused(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post("/api/tokens", json={"name": "bot {{ 7*7 }}", "role": "viewer"}, headers=admin)
    assert response.status_code == 422
    assert "template markers" in response.text


@pytest.mark.parametrize(
    "body",
    [
        {"action": "reboot", "backend": "llamacpp", "hosts": ["local"]},
        {"action": "install", "backend": "tgi", "hosts": ["local"]},
        {"action": "install", "hosts": ["local"]},  # a backend action without a backend
        {"action": "upgrade", "backend": "llamacpp", "hosts": ["local"]},  # an upgrade without a version
        {"action": "facts", "hosts": []},
        {"action": "facts", "hosts": ["local"], "extra": "field"},
        {"action": "upgrade", "backend": "llamacpp", "hosts": ["local"], "version": "-rf"},
        {"action": "upgrade", "backend": "llamacpp", "hosts": ["local"], "version": "1.0; rm -rf /"},
        {"action": "upgrade", "backend": "llamacpp", "hosts": ["local"], "version": "x" * 65},
        {"action": "facts", "hosts": ["local,all"]},
        {"action": "facts", "hosts": ["!local"]},
    ],
)
def test_malformed_requests_get_422(client: TestClient, admin: dict[str, str], body: dict) -> None:
    assert client.post("/api/runs", json=body, headers=admin).status_code == 422


def test_hosts_must_be_in_the_inventory(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(
        "/api/runs", json={"action": "facts", "hosts": ["local", "render-99"]}, headers=admin
    )
    assert response.status_code == 422
    assert "render-99" in response.json()["detail"]


def test_versions_of_the_strict_pattern_are_accepted(client: TestClient) -> None:
    from animaflow_control.schemas.runs import RunRequest

    for version in ("b4567", "0.3.36", "v1.2.3+cu124", "2024.10-rc1"):
        RunRequest(action="upgrade", backend="llamacpp", hosts=["local"], version=version)


def test_user_input_becomes_extravars_data_only(tmp_path) -> None:
    from animaflow_control.schemas.runs import RunRequest
    from animaflow_control.services.runner import extravars_for

    bench = RunRequest(action="benchmark", backend="llamacpp", hosts=["render"], model="qwen2.5-7b")
    assert extravars_for(bench, "0123456789ab", tmp_path) == {
        "animaflow_controller_dir": str(tmp_path),
        "backend": "llamacpp",
        "benchmark_backends": ["llamacpp"],
        "benchmark_run_id": "0123456789ab",
        "animaflow_model": "qwen2.5-7b",
    }
    upgrade = RunRequest(action="upgrade", backend="ollama", hosts=["local"], version="0.12.3")
    assert extravars_for(upgrade, "0123456789ab", tmp_path) == {
        "animaflow_controller_dir": str(tmp_path),
        "backend": "ollama",
        "version": "0.12.3",
    }
    # The farm's Benchmark and recommend: no backend is the whole catalogue (each node measures what it has).
    farm = RunRequest(action="benchmark", hosts=["farm"])
    assert extravars_for(farm, "0123456789ab", tmp_path) == {
        "animaflow_controller_dir": str(tmp_path),
        "benchmark_backends": [],
        "benchmark_run_id": "0123456789ab",
    }
