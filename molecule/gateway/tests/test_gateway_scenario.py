"""Verify the studio gateway from the controller, as an assistant would: the official openai client
against https://127.0.0.88:4000/v1, trusting only the studio CA that issued the gateway's certificate
(prepare.yml), with the studio's and an application's key; its Prometheus metrics; and the nodes, which
admit only the gateway (source 127.0.0.1) and themselves."""

import json
import os
import re
import ssl
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

GATEWAY = "https://127.0.0.88:4000/v1"
# The studio CA alone: the system's CAs are not trusted here.
TRUST = ssl.create_default_context(cafile=Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "tls" / "ca.pem")
STUDIO_KEY = "molecule-studio-key-0123456789"
APP_KEY = "molecule-compositor-key-abcdef"
NODES = {"gateway-node-1": "127.0.0.86", "gateway-node-2": "127.0.0.87"}
NODE_KEY = "molecule-node-key-0123"
# Not the gateway's source address: what a workstation that skips the gateway looks like here.
OTHER_SOURCE = "127.0.0.105"


def client(key: str) -> OpenAI:
    return OpenAI(
        base_url=GATEWAY,
        api_key=key,
        max_retries=0,
        timeout=30,
        http_client=httpx.Client(verify=TRUST),
    )


@pytest.mark.parametrize("key", [STUDIO_KEY, APP_KEY])
def test_models_and_chat_through_the_gateway(key: str) -> None:
    assert [model.id for model in client(key).models.list()] == ["tiny"]
    answer = client(key).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8
    )
    assert answer.choices[0].message.content is not None
    assert answer.usage is not None and answer.usage.completion_tokens > 0


def test_streaming_with_usage_through_the_gateway() -> None:
    stream = client(APP_KEY).chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "Count to three."}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text, "no content streamed"
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0


@pytest.mark.parametrize("key", ["wrong-key-0123456789", NODE_KEY])
def test_a_wrong_key_gets_401(key: str) -> None:
    # A node's own key is not a gateway key either.
    with pytest.raises(openai.AuthenticationError) as refused:
        client(key).models.list()
    assert refused.value.status_code == 401


def test_a_missing_key_gets_401() -> None:
    answer = httpx.get(f"{GATEWAY}/models", verify=TRUST, timeout=10)
    assert answer.status_code == 401, answer.text


def test_the_gateway_speaks_only_https_with_the_studio_certificate() -> None:
    # Without the studio CA the certificate is not trusted; plain HTTP gets no answer.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{GATEWAY}/models", timeout=10)
    with pytest.raises(httpx.HTTPError):
        httpx.get(GATEWAY.replace("https://", "http://") + "/models", timeout=10)


def test_metrics_count_each_nodes_answers_and_show_no_key() -> None:
    client(APP_KEY).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "One word."}], max_tokens=2
    )
    text = httpx.get(GATEWAY.removesuffix("/v1") + "/metrics/", verify=TRUST, timeout=10).text
    answered = {
        node: float(count)
        for node, count in re.findall(
            r'^litellm_deployment_success_responses_total\{[^}]*model_id="([^"]+)"[^}]*\} (\S+)$', text, re.M
        )
    }
    assert set(answered) <= set(NODES) and sum(answered.values()) >= 1, text[-2000:]
    assert 'api_key_alias="compositor"' in text
    for secret in (STUDIO_KEY, APP_KEY, NODE_KEY):
        assert secret not in text


def test_an_unknown_model_name_is_refused_clearly() -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        client(STUDIO_KEY).chat.completions.create(
            model="not-in-the-catalogue", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    assert refused.value.status_code in (400, 404)


@pytest.mark.parametrize("node", sorted(NODES))
def test_a_node_admits_the_gateway_and_refuses_other_addresses(node: str) -> None:
    url = f"http://{NODES[node]}:8000/health"
    # From the gateway's source address the node answers (so a refusal below is the allow-list).
    assert httpx.get(url, timeout=5).status_code == 200
    with (
        httpx.Client(transport=httpx.HTTPTransport(local_address=OTHER_SOURCE), timeout=3) as other,
        pytest.raises(httpx.TransportError),
    ):
        other.get(url)


def test_the_node_units_allow_only_the_gateway_and_themselves(host) -> None:
    name = host.backend.get_hostname()
    if name not in NODES:
        pytest.skip("not a node")
    allow = host.check_output("systemctl show -P IPAddressAllow animaflow-llamacpp.service").split()
    deny = host.check_output("systemctl show -P IPAddressDeny animaflow-llamacpp.service").split()
    assert sorted(allow) == sorted(["127.0.0.1/32", f"{NODES[name]}/32"])
    assert sorted(deny) == ["0.0.0.0/0", "::/0"]


def test_a_stop_gives_llama_server_5_s_before_sigkill(host) -> None:
    # llama-server never finishes an open request after SIGTERM; the gateway retries it once it fails.
    if host.backend.get_hostname() not in NODES:
        pytest.skip("not a node")
    assert host.check_output("systemctl show -P TimeoutStopUSec animaflow-llamacpp.service") == "5s"


def test_the_gateway_keeps_no_key_in_the_clear(host) -> None:
    if host.backend.get_hostname() != "gateway-gw":
        pytest.skip("not the gateway")
    keys = json.loads(host.file("/etc/animaflow/gateway/keys.json").content_string)
    assert sorted(keys) == ["compositor", "studio"]
    config = host.file("/etc/animaflow/gateway/config.yaml")
    assert (
        config.mode == 0o640
        and NODE_KEY not in config.content_string
        and STUDIO_KEY not in config.content_string
    )
    assert "os.environ/ANIMAFLOW_NODE_GATEWAY_NODE_1_KEY" in config.content_string
    assert host.file("/etc/animaflow/gateway.secrets.env").mode == 0o640
