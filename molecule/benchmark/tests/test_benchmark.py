"""Verify the benchmark playbook's run "molecule": the results and the report on the controller (the
host running molecule), and each node's backends as they were before the benchmark."""

import json
import os
from pathlib import Path

import pytest
import yaml

RUN = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "controller" / "benchmarks" / "molecule"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def name(host) -> str:
    return host.backend.get_hostname()


def results(host, workload: str = "chat") -> dict:
    suffix = "" if workload == "chat" else f"-{workload}"
    return json.loads((RUN / f"{name(host)}-llamacpp{suffix}.json").read_text())


def test_results_were_fetched_with_schema_2_and_no_failure(host):
    data = results(host)
    assert data["schema_version"] == 2 and data["workload"]["kind"] == "chat"
    assert data["target"]["backend"] == "llamacpp" and data["target"]["model"] == "tiny"
    assert data["target"]["version"] == "b9976" and data["target"]["node"] == name(host)
    assert (data["target"]["model_family"], data["target"]["model_format"]) == ("tiny", "gguf")
    assert data["goodput"]["request_per_s"] is not None and data["max_concurrency_within_slo"]["slo_ttft_ms"]
    assert data["token_source"] == "usage"
    assert [level["concurrency"] for level in data["levels"]] == [1, 2]
    for level in data["levels"]:
        assert level["completed"] > 0 and level["failed"] == 0, level["error_examples"]
        assert level["token_source"] == "usage"
        assert level["total_output_tokens"] == 16 * level["completed"]
    # llama-server sends its own timings; the decode bound needs the model size the playbook found.
    assert data["levels"][0]["server_tpot_ms"]["count"] == data["levels"][0]["completed"]
    assert data["host"]["model_bytes"] > 0 and data["decode_bound"]["tokens_per_s_upper"] > 0


def test_structured_replies_were_each_checked(host):
    data = results(host, "structured")
    assert data["workload"]["kind"] == "structured" and data["workload"]["ignore_eos"] is False
    for level in data["levels"]:
        checked = level["structured"]
        assert level["failed"] == 0, level["error_examples"]
        assert checked["checked"] == level["completed"] == checked["valid"] + checked["invalid"]


def test_shared_prefix_levels_carry_their_unique_prefix_controls(host):
    data = results(host, "shared_prefix")
    for level in data["levels"]:
        prefix = level["prefix"]
        assert prefix["shared_prefix_tokens"] == 16
        assert prefix["unique"]["completed"] > 0 and prefix["unique"]["ttft_ms"]["count"] > 0
        # llama-server reports what it served from its cache: the shared requests reuse the prefix.
        assert level["cached_prompt_tokens"]["median"] > prefix["unique"]["cached_prompt_tokens"]["median"]


def test_the_results_file_stays_on_the_node_too(host):
    assert host.file(f"/var/lib/animaflow/benchmarks/molecule/{name(host)}-llamacpp.json").exists


def test_report_has_a_row_per_node_and_level():
    report = (RUN / "report.md").read_text()
    assert report.startswith("# Benchmark molecule\n")
    assert "| Node | Backend | Version | Conc. | OK | Failed | Output tok/s |" in report
    for node in ("benchmark-node-1", "benchmark-node-2"):
        rows = [line for line in report.splitlines() if line.startswith(f"| {node} | llamacpp | b9976 |")]
        assert [row.split(" | ")[3:6] for row in rows] == [["1", "4", "0"], ["2", "4", "0"]], rows
        assert f"| {node} | llamacpp | chat | tiny (GGUF) | " in report  # the goodput table
        assert f"| {node} | llamacpp (shared_prefix) | b9976 | 2 | 4 | 0 |" in report
    assert "## Structured output" in report and "## Shared prefix: TTFT with and without it" in report


@pytest.mark.parametrize("chart", ["output_tokens_per_s.png", "ttft_p95_ms.png"])
def test_charts_were_drawn(chart):
    assert (RUN / chart).read_bytes().startswith(PNG_MAGIC)
    assert f"]({chart})" in (RUN / "report.md").read_text()


def test_recommendation_names_a_backend_with_reasons(host):
    report = (RUN / "report.md").read_text()
    section = report.split(f"### {name(host)}\n", 1)[1].split("### ", 1)[0]
    # Two concurrent users without a GPU: the prior prefers Ollama, and one measured backend gives
    # nothing to compare, so the prior decides; the reasons say both.
    assert "**Recommended backend: ollama**" in section
    assert "- Brief: No usable GPU and a small studio (4 artists): Ollama first, then llama.cpp." in section
    assert (
        "- Only one eligible backend was benchmarked, so there is nothing to compare: prior only." in section
    )
    assert "| llamacpp | yes | 30.0 |" in section
    # The catalogue's other backends were skipped, each with its reason.
    assert "- Skipped ollama: not installed on this node" in section
    assert "- Skipped vllm: vLLM cannot run on cpu; it needs one of cuda." in section
    assert "- Skipped sglang: SGLang cannot run on cpu; it needs one of cuda." in section


def test_each_node_got_its_backends_back(host):
    llamacpp = host.service("animaflow-llamacpp")
    if name(host).endswith("-node-1"):
        assert llamacpp.is_running and llamacpp.is_enabled
    else:  # nothing was active before the benchmark, and the unit was disabled
        assert not llamacpp.is_running and not llamacpp.is_enabled


def tune(host) -> dict:
    return json.loads((RUN / f"{name(host)}-llamacpp-tune.json").read_text())


def test_the_sweep_measured_its_candidate_beside_derived(host):
    data = tune(host)
    assert data["kind"] == "llamacpp_tune" and data["node"]["launcher"] == "systemd"
    env = host.file("/etc/animaflow/llamacpp.env").content_string
    # The derived candidate is what the node's environment file says (2 concurrent users, tiny's 256).
    assert f'LLAMA_ARG_THREADS="{data["derived"]["threads"]}"' in env
    assert data["derived"]["parallel"] == 2 and data["derived"]["ctx_per_slot"] == 256
    (block,) = data["blocks"]  # one round, one candidate, beside the derived server
    assert block["label"] == "batch=512, ubatch=512" and not block.get("error"), block
    assert len(block["decode"]) == len(block["derived_throughput"]) == 2
    assert set(data["derived_vs_best"]) == {"decode", "throughput"}
    assert host.file(f"/var/lib/animaflow/benchmarks/molecule/{name(host)}-llamacpp-tune.json").exists


def test_the_suggestion_is_host_vars_on_the_controller_only(host):
    text = (RUN / f"{name(host)}-llamacpp-tuned.yml").read_text()
    assert text.startswith(f"# llama.cpp settings suggested for {name(host)} by the benchmark run molecule")
    assert set(yaml.safe_load(text) or {}) <= {"llamacpp_batch_size", "llamacpp_ubatch_size"}
    report = (RUN / "report.md").read_text()
    section = report.split("## llama.cpp tuning\n", 1)[1]
    assert f"### {name(host)}\n" in section and f"suggestion `{name(host)}-llamacpp-tuned.yml`" in section


def test_no_candidate_unit_or_copied_build_is_left(host):
    units = host.run("systemctl list-units --all --plain --no-legend 'animaflow-llamacpp-tune-*'")
    assert units.stdout.strip() == "", units.stdout
    assert not host.file("/var/lib/animaflow/llamacpp-tune-builds").exists


def test_a_backend_serving_another_family_is_skipped_with_the_fix(host):
    report = (RUN.parent / "molecule-other-family" / "report.md").read_text()
    section = report.split(f"### {name(host)}\n", 1)[1].split("### ", 1)[0]
    assert (
        "- Skipped llamacpp: serves tiny, not this bake-off's model family qwen2.5-7b-instruct: declare the "
        "family's gguf model in animaflow_models (family: qwen2.5-7b-instruct) and install it, or run with "
        "-e benchmark_family=tiny" in section
    )
    assert "No backend was benchmarked." in report
