"""The benchmark's structured and shared_prefix workloads: the validator, the requests, the results.

The end-to-end tests run the client against a small fake chat server in its own process (replies
and prefix-cache counts the test chooses): it checks the client's mechanics, not any model server;
tests/integration/test_bench_real_server.py runs both workloads against llama-server.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import re
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from module_runner import run_module

from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench import (
    WORKLOADS,
    BenchConfig,
    Workload,
    _cache_warning,
    run_benchmark,
    run_level,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_client import (
    ConnectionPool,
    RequestRecord,
    interpret_events,
    parse_endpoint,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_structured import (
    CUT_AT_MAX_TOKENS,
    SCHEMA,
    STRUCTURED_MIN_OUTPUT_TOKENS,
    check_reply,
    response_format,
    schema_sha256,
    unsupported_keywords,
    validate,
)
from ansible_collections.animaflow.inference.plugins.modules import llm_benchmark

LOOPBACK = "127.0.0.1"
RECORD: dict[str, Any] = {
    "shot_id": "sh010",
    "sequence": "sq020",
    "frame_start": 1001,
    "frame_end": 1048,
    "status": "animation",
    "assets": ["hero_rig", "forest_set"],
    "description": "The hero crosses the bridge at dusk.",
    "needs_review": False,
}
TAG = re.compile(r"Request [0-9a-f]+-(\d+):")


def with_(**changes: Any) -> dict[str, Any]:
    """RECORD with fields replaced; a value of ... removes the field."""
    record = {**RECORD, **changes}
    return {key: value for key, value in record.items() if value is not ...}


# --- the validator ---------------------------------------------------------------------------------


def test_a_good_record_is_valid() -> None:
    assert validate(RECORD, SCHEMA) is None
    assert validate(with_(frame_start=12.0), SCHEMA) is None  # JSON Schema: 12.0 is an integer
    assert validate(with_(shot_id="é" * 16), SCHEMA) is None  # maxLength counts characters, not bytes


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([RECORD], "$: expected object, got array"),
        (with_(status=...), "$: missing required status"),
        (with_(camera="cam_a"), "$: additional property camera"),
        (with_(frame_start="1001"), "$.frame_start: expected integer, got string"),
        (with_(frame_start=10.5), "$.frame_start: expected integer, got number"),
        (with_(frame_start=True), "$.frame_start: expected integer, got boolean"),
        (with_(frame_start=-1), "$.frame_start: -1 below minimum 0"),
        (with_(frame_end=100000), "$.frame_end: 100000 above maximum 99999"),
        (with_(shot_id=""), "$.shot_id: shorter than minLength 1"),
        (with_(shot_id="s" * 17), "$.shot_id: longer than maxLength 16 (17 characters)"),
        (with_(status="done"), '$.status: "done" is not one of the enum'),
        (with_(assets="hero_rig"), "$.assets: expected array, got string"),
        (with_(assets=[]), "$.assets: 0 items, fewer than minItems 1"),
        (with_(assets=["a", "b", "c", "d", "e"]), "$.assets: 5 items, more than maxItems 4"),
        (with_(assets=["a", 7]), "$.assets[1]: expected string, got integer"),
        (with_(needs_review="no"), "$.needs_review: expected boolean, got string"),
        (with_(needs_review=0), "$.needs_review: expected boolean, got integer"),
        (with_(description=None), "$.description: expected string, got null"),
    ],
)
def test_each_rule_rejects_what_breaks_it(document: Any, reason: str) -> None:
    assert validate(document, SCHEMA) == reason


def test_number_and_enum_follow_json_not_python() -> None:
    assert validate(1.5, {"type": "number"}) is None and validate(3, {"type": "number"}) is None
    assert validate(True, {"type": "number"}) == "$: expected number, got boolean"
    assert validate("3", {"type": "number", "minimum": 1}) == "$: expected number, got string"
    # Python says True == 1; JSON does not.
    assert validate(True, {"enum": [1]}) == "$: true is not one of the enum"
    assert validate(1.0, {"enum": [1]}) is None


def test_the_validator_agrees_with_the_reference_implementation() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    validator.check_schema(SCHEMA)
    documents = [
        RECORD,
        with_(frame_start=12.0),
        with_(frame_start=12.5),
        with_(frame_start=True),
        with_(shot_id="é" * 16),
        with_(shot_id="é" * 17),
        with_(assets=[]),
        with_(assets=["a"] * 4),
        with_(assets=["a"] * 5),
        with_(assets=[""]),
        with_(description="x" * 80),
        with_(description="x" * 81),
        with_(status="final"),
        with_(status="Final"),
        with_(extra=1),
        with_(needs_review=...),
        with_(frame_end=99999),
        with_(frame_end=-0.0),
        [],
        "text",
    ]
    for document in documents:
        assert (validate(document, SCHEMA) is None) == validator.is_valid(document), document


def test_the_schema_uses_only_what_the_validator_checks() -> None:
    assert unsupported_keywords(SCHEMA) == []
    grown = {
        **SCHEMA,
        "properties": {**SCHEMA["properties"], "shot_id": {"type": "string", "pattern": "^sh"}},
    }
    assert unsupported_keywords(grown) == ["$.shot_id: pattern"]
    # OpenAI's strict mode: every property required, nothing else allowed.
    assert (
        sorted(SCHEMA["required"]) == sorted(SCHEMA["properties"]) and SCHEMA["additionalProperties"] is False
    )


@pytest.mark.parametrize(
    ("content", "finish_reason", "reason"),
    [
        (json.dumps(RECORD), "stop", None),
        (json.dumps(RECORD, indent=2), None, None),
        (json.dumps(RECORD), "length", CUT_AT_MAX_TOKENS),  # even when the text happens to parse
        (json.dumps(RECORD)[:-20], "length", CUT_AT_MAX_TOKENS),
        ("", "stop", "no answer text"),
        (None, "stop", "no answer text"),
        ("Here is the record:", "stop", "not JSON: Expecting value at character 0"),
        (json.dumps(RECORD) + " done", "stop", "not JSON: Extra data at character"),
        ('{"frame_start": NaN}', "stop", "not JSON: NaN is not JSON"),
        (json.dumps(with_(status="done")), "stop", '$.status: "done" is not one of the enum'),
    ],
)
def test_replies_are_judged(content: str | None, finish_reason: str | None, reason: str | None) -> None:
    got = check_reply(content, finish_reason)
    assert got is None if reason is None else got is not None and got.startswith(reason), got


def test_the_schema_digest_is_of_its_canonical_json() -> None:
    canonical = json.dumps(SCHEMA, sort_keys=True, separators=(",", ":")).encode()
    assert schema_sha256() == hashlib.sha256(canonical).hexdigest()


# --- options -------------------------------------------------------------------------------------


def config(**overrides: Any) -> BenchConfig:
    return BenchConfig(base_url="http://127.0.0.1:9", model="m", **overrides)


def test_structured_refuses_ignore_eos_and_a_too_small_cap() -> None:
    with pytest.raises(ValueError, match="structured needs ignore_eos false"):
        config(workload="structured", output_tokens=512).validate()  # ignore_eos defaults to true
    with pytest.raises(ValueError, match=f"output_tokens >= {STRUCTURED_MIN_OUTPUT_TOKENS}"):
        config(workload="structured", ignore_eos=False).validate()  # the default 64
    config(workload="structured", ignore_eos=False, output_tokens=STRUCTURED_MIN_OUTPUT_TOKENS).validate()


def test_unknown_workloads_and_empty_prefixes_are_refused() -> None:
    with pytest.raises(ValueError, match="workload must be one of chat, structured, shared_prefix"):
        config(workload="rag").validate()
    with pytest.raises(ValueError, match="shared_prefix_tokens must be >= 1"):
        config(workload="shared_prefix", shared_prefix_tokens=0).validate()
    config(workload="shared_prefix", shared_prefix_tokens=1).validate()


def test_the_module_offers_the_workloads_and_fails_cleanly(tmp_path: Path) -> None:
    options = yaml.safe_load(llm_benchmark.DOCUMENTATION)["options"]
    assert (
        options["workload"]["choices"]
        == llm_benchmark.ARGUMENT_SPEC["workload"]["choices"]
        == list(WORKLOADS)
    )
    assert options["shared_prefix_tokens"]["default"] == 1024
    done = run_module(
        "llm_benchmark", tmp_path, {"base_url": "http://127.0.0.1:9", "model": "m", "workload": "structured"}
    )
    result = json.loads(done.stdout)
    assert result["failed"] is True and "ignore_eos false" in result["msg"]


# --- the requests --------------------------------------------------------------------------------


def bodies(requests: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(request.split(b"\r\n\r\n", 1)[1]) for request in requests]


def workload(**overrides: Any) -> Workload:
    cfg = config(**overrides)
    return Workload(cfg, parse_endpoint(cfg.base_url))


def test_chat_requests_are_what_they_were() -> None:
    for body in bodies(workload(input_tokens=32).requests(3)):
        assert list(body) == ["model", "messages", "max_tokens", "stream", "stream_options", "ignore_eos"]
        (message,) = body["messages"]
        assert message["role"] == "user" and message["content"].endswith(
            "repeat these words, then keep writing more of them."
        )


def test_structured_requests_carry_the_schema_and_ask_for_a_record() -> None:
    sent = bodies(workload(workload="structured", ignore_eos=False, output_tokens=300).requests(4))
    for number, body in enumerate(sent):
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "shot_record", "strict": True, "schema": SCHEMA},
        }
        assert body["response_format"] == response_format()
        assert "ignore_eos" not in body and body["max_tokens"] == 300
        (message,) = body["messages"]
        assert int(TAG.search(message["content"]).group(1)) == number
        # About input_tokens (128) tokens: filler words, then the instruction naming the fields.
        assert "JSON shot record" in message["content"] and 80 <= len(message["content"].split()) <= 128
    assert len({body["messages"][0]["content"][:24] for body in sent}) == 4


def test_shared_prefix_requests_share_one_system_prompt_and_controls_do_not() -> None:
    run = workload(workload="shared_prefix", shared_prefix_tokens=400, input_tokens=24)
    measured = bodies(run.requests(4))
    priming = bodies(run.priming_requests(2))
    controls = bodies(run.control_requests(6))
    shared = measured[0]["messages"][0]
    assert shared["role"] == "system" and shared["content"] == run.shared_prefix
    assert all(body["messages"][0] == shared for body in measured + priming)
    assert all(body["max_tokens"] == 1 for body in priming) and all(b["max_tokens"] == 64 for b in measured)
    users = [body["messages"][1]["content"] for body in measured + priming + controls]
    assert len(set(users)) == len(users) and all(body["messages"][1]["role"] == "user" for body in measured)
    words = len(shared["content"].split())
    assert 390 <= words <= 400  # about shared_prefix_tokens, as input_tokens is for the user message
    systems = [body["messages"][0]["content"] for body in controls]
    assert all(body["messages"][0]["role"] == "system" for body in controls)
    # Each its own from the first characters on (and none the shared one), the same length.
    assert len({text[:12] for text in [*systems, shared["content"]]}) == len(systems) + 1
    assert all(abs(len(text.split()) - words) <= 1 for text in systems)
    assert all(abs(len(text) - len(shared["content"])) <= 0.1 * len(shared["content"]) for text in systems)
    assert all(run.run_id in text for text in [*systems, shared["content"]])
    # Another run (same seed) gets another shared prefix, so no earlier run's cache serves it.
    assert workload(workload="shared_prefix", shared_prefix_tokens=400).shared_prefix != run.shared_prefix


# --- the client: answer text, finish_reason --------------------------------------------------------


def events(*pieces: str, finish: str = "stop") -> list[tuple[float, bytes]]:
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    chunks += [{"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in pieces]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(pieces)}})
    return [(0.01 * n, json.dumps(chunk).encode()) for n, chunk in enumerate(chunks)] + [(1.0, b"[DONE]")]


def test_answer_text_is_kept_only_when_asked_for() -> None:
    kept, plain = RequestRecord(index=0, content=""), RequestRecord(index=1)
    for record in (kept, plain):
        interpret_events(record, events('{"a"', ": 1", "}", finish="length"))
        assert record.finish_reason == "length" and record.output_tokens == 3
    assert kept.content == '{"a": 1}' and plain.content is None


# --- end to end, against a fake chat server ------------------------------------------------------


def _common_words(a: list[str], b: list[str]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def _serve(conn: Any, replies: list[tuple[list[str] | None, str]]) -> None:
    """The fake server's process: replies in turn (a list of content pieces, finish_reason; None
    pieces: HTTP 500); usage counts prompt words, and cached words as the longest word prefix shared
    with an earlier prompt."""
    seen: list[dict[str, Any]] = []
    prompts: list[list[str]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, body: bytes, kind: str, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            with lock:
                self._send(json.dumps(seen).encode(), "application/json")

        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            words = " ".join(message["content"] for message in payload["messages"]).split()
            with lock:
                cached = max((_common_words(words, earlier) for earlier in prompts), default=0)
                prompts.append(words)
                pieces, finish = (
                    (["x"], "length") if payload["max_tokens"] == 1 else replies[len(seen) % len(replies)]
                )
                seen.append(payload)
            if pieces is None:
                self._send(b'{"error": {"message": "injected"}}', "application/json", 500)
                return
            chunks: list[dict[str, Any]] = [
                {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            ]
            chunks += [{"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in pieces]
            chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            usage = {"prompt_tokens": len(words), "completion_tokens": len(pieces)}
            chunks.append(
                {"choices": [], "usage": {**usage, "prompt_tokens_details": {"cached_tokens": cached}}}
            )
            body = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
            self._send(body.encode(), "text/event-stream")

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    conn.send(server.server_address[1])
    server.serve_forever()


@pytest.fixture
def fake_server() -> Iterator[Callable[[list[tuple[list[str], str]]], str]]:
    """Factory: fake_server(replies) -> base URL of a server in its own (forked) process."""
    started = []
    context = multiprocessing.get_context("fork")

    def start(replies: list[tuple[list[str], str]]) -> str:
        here, there = context.Pipe()
        process = context.Process(target=_serve, args=(there, replies), daemon=True)
        process.start()
        started.append(process)
        return f"http://{LOOPBACK}:{here.recv()}"

    yield start
    for process in started:
        process.terminate()
        process.join(10)


def seen(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url + "/_seen", timeout=5) as response:
        return json.load(response)


def bench(url: str, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "base_url": url,
        "model": "fake",
        "concurrency": [1],
        "requests_per_level": 4,
        "warmup_requests": 0,
        "memory_bandwidth_gbps": 50.0,  # no host measurement
        **overrides,
    }
    return asyncio.run(run_benchmark(BenchConfig(**options)))


GOOD = json.dumps(RECORD)
REPLIES = [
    ([GOOD[:10], GOOD[10:40], GOOD[40:]], "stop"),  # valid, split over chunks
    ([json.dumps(with_(status="done"))], "stop"),
    ([GOOD[:30]], "length"),
    (["Sure! ", "Here it is."], "stop"),
]


def test_structured_replies_are_checked_and_invalid_ones_are_not_failures(fake_server) -> None:
    url = fake_server(REPLIES)
    results = bench(url, workload="structured", ignore_eos=False, output_tokens=256, requests_per_level=8)
    (level,) = results["levels"]
    assert level["completed"] == 8 and level["failed"] == 0 and level["errors"] == {}
    assert level["structured"] == {
        "checked": 8,
        "valid": 2,
        "invalid": 6,
        "invalid_examples": [
            '$.status: "done" is not one of the enum',
            CUT_AT_MAX_TOKENS,
            "not JSON: Expecting value at character 0",
        ],
    }
    workload_ = results["workload"]
    assert workload_["kind"] == "structured"
    assert workload_["structured"]["schema_name"] == "shot_record"
    assert workload_["structured"]["schema"] == SCHEMA
    assert workload_["structured"]["schema_sha256"] == schema_sha256()
    assert all(body["response_format"] == response_format() for body in seen(url))
    for key in ("workload.kind", "workload.structured", "structured"):
        assert key in results["metric_definitions"]


def test_failed_requests_are_failures_not_invalid_replies(fake_server) -> None:
    url = fake_server([REPLIES[0], (None, "500"), REPLIES[1]])
    results = bench(url, workload="structured", ignore_eos=False, output_tokens=256, requests_per_level=6)
    (level,) = results["levels"]
    assert level["failed"] == 2 and level["errors"] == {"http_500": 2} and level["completed"] == 4
    assert level["structured"] == {
        "checked": 4,
        "valid": 2,
        "invalid": 2,
        "invalid_examples": ['$.status: "done" is not one of the enum'],
    }


@pytest.mark.parametrize("processes", [1, 2])
def test_replies_are_kept_and_judged_in_every_client_process(fake_server, processes: int) -> None:
    """The forked client workers keep the answer text too; chat keeps none."""
    url = fake_server(REPLIES)
    for keep in (True, False):
        endpoint = parse_endpoint(url)
        endpoint.keep_content = keep
        cfg = BenchConfig(
            base_url=url, model="fake", workload="structured", ignore_eos=False, output_tokens=256
        )

        async def run(endpoint=endpoint, cfg=cfg) -> list[RequestRecord]:
            pool = ConnectionPool(endpoint)
            try:
                return (await run_level(pool, Workload(cfg, endpoint).requests(4), 2, 10.0, processes))[0]
            finally:
                await pool.close()

        records = asyncio.run(run())
        assert all(record.ok for record in records)
        if keep:
            assert sorted(record.content for record in records) == sorted("".join(p) for p, _ in REPLIES)
            assert sorted(record.finish_reason for record in records) == ["length", "stop", "stop", "stop"]
        else:
            assert all(record.content is None for record in records)


def test_chat_results_say_chat_and_check_nothing(fake_server) -> None:
    results = bench(fake_server(REPLIES))
    assert results["workload"]["kind"] == "chat"
    assert "structured" not in results["workload"] and "shared_prefix_tokens" not in results["workload"]
    (level,) = results["levels"]
    assert "structured" not in level and "prefix" not in level and level["completed"] == 4


def test_shared_prefix_levels_set_the_shared_requests_against_unique_controls(fake_server) -> None:
    url = fake_server([(["tok "] * 4, "length")])
    results = bench(
        url,
        workload="shared_prefix",
        shared_prefix_tokens=200,
        input_tokens=16,
        output_tokens=4,
        concurrency=[1, 2],
        requests_per_level=3,
        warmup_requests=1,
    )
    assert (
        results["workload"]["kind"] == "shared_prefix" and results["workload"]["shared_prefix_tokens"] == 200
    )
    sent = seen(url)
    # Warm-up, then per level: priming (one per stream), the measured requests, the controls.
    assert len(sent) == 1 + (1 + 3 + 3) + (2 + 3 + 3)
    assert sum(body["max_tokens"] == 1 for body in sent) == 1 + 2
    shared = sent[0]["messages"][0]["content"]
    assert sum(body["messages"][0]["content"] == shared for body in sent) == 1 + 2 * 3 + 1 + 2
    for level in results["levels"]:
        prefix, unique = level["prefix"], level["prefix"]["unique"]
        assert level["completed"] == 3 and level["failed"] == 0
        assert unique["requests"] == unique["completed"] == 3 and unique["failed"] == 0
        assert unique["ttft_ms"]["count"] == 3 and unique["cached_prompt_tokens"]["count"] == 3
        assert prefix["shared_prefix_tokens"] == 200 and prefix["priming_requests"] == level["concurrency"]
        # The fake server's cache: the shared system prompt's words for every measured request,
        # next to nothing for the controls.
        assert level["cached_prompt_tokens"]["count"] == 3 and level["cached_prompt_tokens"]["mean"] >= 190
        assert unique["cached_prompt_tokens"]["max"] <= 2
        assert abs(unique["prompt_tokens"]["median"] - level["prompt_tokens"]["median"]) <= 4
        for quantile in ("p50", "p95"):
            ratio = prefix[f"ttft_{quantile}_ratio_unique_over_shared"]
            assert isinstance(ratio, float) and ratio > 0  # the value is the server's business
        assert prefix["cache_warning"] is None
    for key in ("prefix", "prefix.ttft_p50_ratio_unique_over_shared", "workload.shared_prefix_tokens"):
        assert key in results["metric_definitions"]


def test_a_server_without_prefix_cache_gets_a_warning(fake_server) -> None:
    """The fake server reports what it cached; one that reports none leaves the result in doubt."""
    url = fake_server([(["tok "] * 2, "stop")])
    results = bench(url, workload="shared_prefix", shared_prefix_tokens=50, input_tokens=8, output_tokens=2)
    assert results["levels"][0]["prefix"]["cache_warning"] is None
    level = {"cached_prompt_tokens": {"count": 4, "median": 3.0}}
    assert "under half the 50-token prefix" in _cache_warning(level, 50)
    assert "no cached prompt tokens" in _cache_warning({"cached_prompt_tokens": {"count": 0}}, 50)
