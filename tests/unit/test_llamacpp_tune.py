"""The llama.cpp sweep's logic without llama-server: candidates, the interleaved order, the ratios,
the winner, the suggestion and the transient units' commands. No timing is judged here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from module_runner import run_module

from ansible_collections.animaflow.inference.plugins.module_utils import llamacpp_tune as lt
from ansible_collections.animaflow.inference.plugins.module_utils.bench_report import build_report
from ansible_collections.animaflow.inference.plugins.modules import llamacpp_tune as module

DERIVED = {
    "threads": 2,
    "batch": 2048,
    "ubatch": 512,
    "parallel": 4,
    "ctx_per_slot": 4096,
    "load_mode": "mmap",
    "build": "avx512",
}


def test_env_file_round_trip_with_the_roles_escaping() -> None:
    text = (
        '# Settings\nLLAMA_ARG_THREADS="2"\nLLAMA_ARG_ALIAS="a \\"quoted\\" \\\\ name"\n\nLLAMA_API_KEY="k"\n'
    )
    assert lt.parse_env_file(text) == {
        "LLAMA_ARG_THREADS": "2",
        "LLAMA_ARG_ALIAS": 'a "quoted" \\ name',
        "LLAMA_API_KEY": "k",
    }


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, "mmap"),
        ({"LLAMA_ARG_LOAD_MODE": "mlock"}, "mlock"),
        ({"LLAMA_ARG_MMAP": "0"}, "none"),
        ({"LLAMA_ARG_NO_MMAP": "1"}, "none"),
        ({"LLAMA_ARG_MLOCK": "1"}, "mmap+mlock"),
        ({"LLAMA_ARG_MMAP": "false", "LLAMA_ARG_MLOCK": "true"}, "mlock"),
    ],
)
def test_load_mode_from_either_generation_of_names(env: dict[str, str], mode: str) -> None:
    assert lt.load_mode_from_env(env) == mode


def test_settings_from_the_roles_environment_and_llama_servers_defaults() -> None:
    env = {"LLAMA_ARG_THREADS": "2", "LLAMA_ARG_N_PARALLEL": "4", "LLAMA_ARG_CTX_SIZE": "16384"}
    assert lt.settings_from_env(env, "avx512", vcpus=8) == DERIVED
    assert lt.settings_from_env({}, "x", vcpus=8)["threads"] == 8


def test_server_env_sets_every_swept_setting_in_both_spellings() -> None:
    base = {"LLAMA_ARG_MODEL": "/m.gguf", "LLAMA_ARG_HOST": "0.0.0.0", "LLAMA_ARG_NO_MMAP": "1"}
    settings = {**DERIVED, "parallel": 2, "ctx_per_slot": 512, "load_mode": "mmap+mlock"}
    env = lt.server_env(base, settings, "127.0.0.101", 8123)
    assert env == {
        "LLAMA_ARG_MODEL": "/m.gguf",
        "LLAMA_ARG_HOST": "127.0.0.101",
        "LLAMA_ARG_PORT": "8123",
        "LLAMA_ARG_THREADS": "2",
        "LLAMA_ARG_N_PARALLEL": "2",
        "LLAMA_ARG_BATCH": "2048",
        "LLAMA_ARG_UBATCH": "512",
        "LLAMA_ARG_CTX_SIZE": "1024",
        "LLAMA_ARG_LOAD_MODE": "mmap+mlock",
        "LLAMA_ARG_MMAP": "1",
        "LLAMA_ARG_MLOCK": "1",
    }
    assert lt.load_mode_from_env(env) == "mmap+mlock"


def test_candidates_change_one_setting_each_around_derived() -> None:
    candidates = lt.generate_candidates(DERIVED, vcpus=2, builds=["avx2"], max_ctx_per_slot=8192)
    assert [c.label for c in candidates] == [
        "derived",
        "threads=1",
        "batch=512/512",
        "batch=256/128",  # 2048/512 is derived already
        "parallel=1",  # 4 is derived already
        "ctx_per_slot=2048",
        "ctx_per_slot=8192",
        "load_mode=none",
        "load_mode=mmap+mlock",
        "build=avx2",
    ]
    for candidate in candidates[1:]:
        changed = {key for key in DERIVED if candidate.settings[key] != DERIVED[key]}
        expected = (
            {"batch", "ubatch"}
            if candidate.axis == "batch"
            else {candidate.axis.replace("ctx", "ctx_per_slot")}
        )
        assert changed and changed <= expected, candidate


def test_candidates_respect_axes_and_the_models_context() -> None:
    labels = [c.label for c in lt.generate_candidates(DERIVED, 2, axes=["ctx"], max_ctx_per_slot=4096)]
    assert labels == ["derived", "ctx_per_slot=2048"]
    with pytest.raises(ValueError, match="unknown axes"):
        lt.generate_candidates(DERIVED, 2, axes=["nope"])


def test_thread_counts_stay_few_on_large_nodes() -> None:
    assert lt.thread_counts(4, 4) == [1, 2, 3, 4]
    assert lt.thread_counts(64, 32) == [1, 2, 4, 8, 16, 32, 40, 64]


def test_candidates_visit_in_another_order_every_round() -> None:
    labels = ["derived", "A", "B", "C"]
    assert [lt.round_order(labels, number) for number in range(3)] == [
        ["A", "B", "C"],
        ["A", "C", "B"],
        ["C", "A", "B"],
    ]


def test_ratios_are_to_derived_in_the_same_block() -> None:
    candidates = [
        lt.Candidate("derived", DERIVED),
        lt.Candidate("threads=1", {**DERIVED, "threads": 1}, "threads"),
    ]
    # The machine halves its speed between round 0 and round 1: the ratios do not see it.
    blocks = [
        {
            "label": "threads=1",
            "derived_decode": [100.0, 100.0],
            "decode": [110.0, 110.0],
            "ratio_decode": 1.1,
            "derived_throughput": [200.0, 200.0],
            "throughput": [180.0, 180.0],
            "ratio_throughput": 0.9,
        },
        {
            "label": "threads=1",
            "derived_decode": [50.0, 50.0],
            "decode": [55.0, 55.0],
            "ratio_decode": 1.1,
            "derived_throughput": [100.0, 100.0],
            "throughput": [90.0, 90.0],
            "ratio_throughput": 0.9,
        },
    ]
    derived, other = lt.summarise(candidates, blocks)
    assert derived["score_decode"] == 1.0 and derived["median_decode"] == 75.0 and derived["visits"] == 2
    assert other["ratios_decode"] == [1.1, 1.1] and other["score_decode"] == 1.1
    assert other["median_decode"] == 82.5 and other["score_throughput"] == 0.9
    assert other["score_combined"] == round((1.1 * 0.9) ** 0.5, 4)


class FakeLauncher:
    kind = "fake"

    def __init__(self) -> None:
        self.envs: dict[str, dict[str, str]] = {}
        self.running: set[str] = set()
        self.closed = False

    def start(
        self, name: str, binary: str, env: dict[str, str], secrets: str | None, base_url: str
    ) -> lt.Server:
        if binary == "/broken":
            raise lt.TuneError("exited before it was healthy: illegal instruction")
        self.envs[base_url] = env
        self.running.add(base_url)
        return lt.Server(name, base_url, "")

    def ready(self, server: lt.Server, timeout_s: float) -> None:
        pass

    def stop(self, server: lt.Server) -> None:
        self.running.discard(server.base_url)

    def close(self) -> None:
        self.closed = True


def fake_measure(launcher: FakeLauncher, speeds: dict[str, tuple[float, float]]) -> lt.Measure:
    """Speeds by THREADS,BATCH,N_PARALLEL of the server behind the URL; (100, 200) otherwise."""

    def measure(base_url: str, metric: str, slots: int = 1) -> dict[str, Any]:
        assert base_url in launcher.running, "measured a server that is not running"
        env = launcher.envs[base_url]
        key = ",".join(env[name] for name in ("LLAMA_ARG_THREADS", "LLAMA_ARG_BATCH", "LLAMA_ARG_N_PARALLEL"))
        decode, throughput = speeds.get(key, (100.0, 200.0))
        value = {"decode": decode, "throughput": throughput, "warmup": 1.0}[metric]
        return {"value": value, "failed_requests": 0, "error": None}

    return measure


def run_tune(
    speeds: dict[str, tuple[float, float]], derived_override: dict[str, Any] | None = None, **options: Any
) -> tuple[dict[str, Any], FakeLauncher]:
    config = lt.TuneConfig(
        binaries={"avx512": "/bin/true", "avx2": "/broken"},
        base_env={"LLAMA_ARG_MODEL": "/m.gguf"},
        derived={**DERIVED, **(derived_override or {})},
        model="m",
        vcpus=2,
        rounds=2,
        **options,
    )
    launcher = FakeLauncher()
    return lt.tune(config, launcher, fake_measure(launcher, speeds)), launcher


def test_winner_beats_derived_by_more_than_the_margin_else_derived_stays() -> None:
    result, launcher = run_tune({"1,2048,4": (102.0, 202.0)})
    assert result["winner"]["label"] == "derived"  # 2 % better: within the margin
    assert result["suggestion"]["set"] == {}
    assert launcher.closed
    assert result["derived_vs_best"] == {"decode": round(1 / 1.02, 4), "throughput": round(200 / 202, 4)}
    assert result["meets_target"] is True
    assert len(result["phases"]) == 1


def test_a_clear_winner_becomes_the_suggestion_and_a_broken_build_is_reported() -> None:
    result, _ = run_tune({"1,2048,4": (150.0, 190.0)})
    assert result["winner"]["label"] == "threads=1"
    assert result["suggestion"] == {
        "set": {"llamacpp_threads": 1},
        "unchanged": {
            "llamacpp_batch_size": 2048,
            "llamacpp_ubatch_size": 512,
            "llamacpp_parallel": 4,
            "llamacpp_ctx_per_slot": 4096,
            "llamacpp_load_mode": "mmap",
            "llamacpp_cpu_baseline": "avx512",
        },
    }
    assert result["best"]["decode"]["label"] == "threads=1"
    assert result["derived_vs_best"]["decode"] == round(1 / 1.5, 4)
    assert result["meets_target"] is False
    broken = next(row for row in result["phases"][0] if row["label"] == "build=avx2")
    assert broken["failed_visits"] == broken["visits"] == 1 and broken["score_combined"] is None
    assert broken["dropped_after_round"] == 0  # a build that cannot start is not tried again
    assert "illegal instruction" in broken["errors"][0]
    assert result["tune_schema_version"] == 1 and result["kind"] == "llamacpp_tune"


def test_a_far_slower_candidate_is_dropped_after_a_round() -> None:
    result, _ = run_tune({"1,2048,4": (20.0, 50.0)}, axes=["threads"])
    slow = result["phases"][0][1]
    assert slow["label"] == "threads=1" and slow["visits"] == 1 and slow["dropped_after_round"] == 0
    assert [block["label"] for block in result["blocks"]] == ["threads=1"]
    assert "1/0" not in lt.render_table(result) and "0/1, dropped after round 0" in lt.render_table(result)


def test_two_winning_settings_are_confirmed_together_in_a_second_phase() -> None:
    speeds = {
        "1,2048,4": (120.0, 210.0),
        "2,512,4": (110.0, 220.0),
        "1,512,4": (130.0, 230.0),
    }
    result, _ = run_tune(speeds, axes=["threads", "batch"])
    assert len(result["phases"]) == 2
    assert [row["label"] for row in result["phases"][1]] == [
        "derived",
        "threads=1",
        "batch=512/512",
        "combined: threads=1 + batch=512/512",
    ]
    assert result["winner"]["label"] == "combined: threads=1 + batch=512/512"
    assert result["suggestion"]["set"] == {"llamacpp_threads": 1, "llamacpp_batch_size": 512}


def threads_sweep(binary: str) -> lt.TuneConfig:
    """One round over the threads axis, with one build."""
    return lt.TuneConfig(
        binaries={"avx512": binary},
        base_env={},
        derived=DERIVED,
        model="m",
        vcpus=2,
        rounds=1,
        axes=["threads"],
    )


def test_the_derived_settings_must_serve() -> None:
    config = threads_sweep("/broken")
    launcher = FakeLauncher()
    with pytest.raises(lt.TuneError, match="derived settings did not start: exited before it was healthy"):
        lt.tune(config, launcher, lambda url, metric, slots=1: {})
    assert launcher.closed


def test_a_derived_server_that_stops_serving_ends_the_sweep() -> None:
    config = threads_sweep("/x")
    launcher = FakeLauncher()
    derived_url: list[str] = []

    def measure(url: str, metric: str, slots: int = 1) -> dict[str, Any]:
        derived_url.append(derived_url[0] if derived_url else url)
        if url == derived_url[0] and metric != "warmup":
            return {"value": None, "failed_requests": 2, "error": "2 of 2 requests failed: {'connection': 2}"}
        return {"value": 10.0, "failed_requests": 0, "error": None}

    with pytest.raises(lt.TuneError, match="derived settings stopped serving: 2 of 2 requests failed"):
        lt.tune(config, launcher, measure)
    assert launcher.closed and launcher.running == set()


def test_explicit_candidates() -> None:
    config = lt.TuneConfig(
        binaries={"avx512": "/x"},
        base_env={},
        derived=DERIVED,
        model="m",
        candidates=[{"threads": 1}, {"label": "small batch", "batch": 256, "ubatch": 128}],
    )
    candidates = config.build_candidates()
    assert [(c.label, c.axis) for c in candidates] == [
        ("derived", None),
        ("threads=1", "threads"),
        ("small batch", "combined"),
    ]
    with pytest.raises(ValueError, match="unknown settings"):
        lt.TuneConfig(
            binaries={}, base_env={}, derived=DERIVED, model="m", candidates=[{"nope": 1}]
        ).build_candidates()


def test_the_suggestion_is_yaml_with_only_the_changed_role_variables() -> None:
    result, _ = run_tune({"1,2048,4": (150.0, 190.0)})
    text = lt.render_suggestion(result, "node-1", "r1")
    assert yaml.safe_load(text) == {"llamacpp_threads": 1}
    assert "# llama.cpp settings suggested for node-1 by the benchmark run r1" in text
    assert "derived reaches 66.7% of it" in text
    assert "# llamacpp_parallel: 4" in text  # unchanged ones only as comments
    table = lt.render_table(result)
    assert "derived / best single-stream decode: 66.7% (best: threads=1)" in table
    assert "NOT met" in table


def test_the_suggestion_says_no_change_when_derived_wins() -> None:
    result, _ = run_tune({})
    text = lt.render_suggestion(result, "node-1", "r1")
    assert yaml.safe_load(text) is None
    assert "No change" in text


def test_the_report_shows_each_nodes_sweep(tmp_path: Path) -> None:
    result, _ = run_tune({"1,2048,4": (150.0, 190.0)})
    (tmp_path / "n1-llamacpp-tune.json").write_text(json.dumps(result))
    nodes = [
        {"host": "n1", "tuning": {"results": "n1-llamacpp-tune.json", "suggestion": "n1-llamacpp-tuned.yml"}},
        {"host": "n2", "tuning": {"error": "the llama.cpp sweep failed: boom"}},
    ]
    markdown = build_report(tmp_path, "r1", nodes, [], write=True)["markdown"]
    section = markdown.split("## llama.cpp tuning\n", 1)[1]
    assert "Derived reaches **66.7%** of the best single-stream decode (threads=1)" in section
    assert "suggestion `n1-llamacpp-tuned.yml`: `llamacpp_threads: 1`" in section
    assert "| 1 | threads=1 | 150.0 | 1.500 | 2/2 | 190.0 | 0.950 | 0/2 |" in section
    assert "### n2\n\n- the llama.cpp sweep failed: boom" in section


UNIT = """# Ansible managed
[Unit]
Description=AnimaFlow inference backend llamacpp
[Service]
Type=exec
User=animaflow
EnvironmentFile=/etc/animaflow/llamacpp.env
EnvironmentFile=/etc/animaflow/llamacpp.secrets.env
ExecStart=/opt/animaflow/llamacpp/current/bin/llama-server
Restart=on-failure
RestartSec=3
# Hardening
NoNewPrivileges=yes
CapabilityBoundingSet=
SystemCallFilter=~@privileged @resources
[Install]
WantedBy=multi-user.target
"""


def test_transient_units_take_the_production_units_user_and_hardening() -> None:
    properties = lt.unit_properties(UNIT)
    assert properties == [
        "User=animaflow",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "SystemCallFilter=~@privileged @resources",
    ]
    command = lt.systemd_run_command(
        "animaflow-llamacpp-tune-1-1.service",
        "/opt/bin/llama-server",
        {"LLAMA_ARG_THREADS": "1", "LLAMA_ARG_HOST": "10.0.0.5"},
        properties,
        "/etc/animaflow/llamacpp.secrets.env",
        mlock=True,
    )
    assert command[:3] == ["systemd-run", "--unit=animaflow-llamacpp-tune-1-1.service", "--collect"]
    assert "--property=Type=exec" in command and "--property=User=animaflow" in command
    assert "--property=EnvironmentFile=/etc/animaflow/llamacpp.secrets.env" in command
    assert "--property=LimitMEMLOCK=infinity" in command
    assert [item for item in command if item.startswith("--setenv")] == [
        "--setenv=LLAMA_ARG_HOST=10.0.0.5",
        "--setenv=LLAMA_ARG_THREADS=1",
    ]
    assert command[-1] == "/opt/bin/llama-server"


def test_process_launcher_stops_what_it_started(tmp_path: Path) -> None:
    """A stand-in server (Python's http.server answering /health) started and stopped for real."""
    script = tmp_path / "server"
    script.write_text(
        f"#!{sys.executable}\n"
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        "http.server.HTTPServer((os.environ['LLAMA_ARG_HOST'], int(os.environ['LLAMA_ARG_PORT'])), H).serve_forever()\n"
    )
    script.chmod(0o755)
    secrets = tmp_path / "secrets.env"
    secrets.write_text('LLAMA_API_KEY="k"\n')
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    launcher = lt.ProcessLauncher(str(log_dir))
    port = lt.free_port("127.0.0.1")
    env = lt.server_env({}, DERIVED, "127.0.0.1", port)
    server = launcher.start("one", str(script), env, str(secrets), f"http://127.0.0.1:{port}")
    lt.wait_healthy(launcher, server, 30)
    pid = server.process.pid
    launcher.close()
    assert server.process.poll() is not None
    assert not log_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    script = tmp_path / "server"
    script.write_text("#!/bin/sh\necho 'error: model not found'\nexit 1\n")
    script.chmod(0o755)
    launcher = lt.ProcessLauncher(str(tmp_path / "logs"))
    (tmp_path / "logs").mkdir()
    server = launcher.start("bad", str(script), {}, None, "http://127.0.0.1:9")
    with pytest.raises(lt.TuneError, match="model not found"):
        lt.wait_healthy(launcher, server, 30)
    launcher.close()


def test_documented_options_match_the_argument_spec() -> None:
    documented = yaml.safe_load(module.DOCUMENTATION)["options"]
    assert set(documented) == set(module.ARGUMENT_SPEC)
    for name, spec in module.ARGUMENT_SPEC.items():
        assert documented[name].get("default") == spec.get("default"), name
        assert documented[name]["type"] == spec["type"], name
        assert documented[name].get("choices") == spec.get("choices"), name


def test_check_mode_starts_nothing(tmp_path: Path) -> None:
    done = run_module("llamacpp_tune", tmp_path, {"_ansible_check_mode": True})
    result = json.loads(done.stdout)
    assert result["skipped"] is True and "started no llama-server" in result["msg"]


def test_a_node_without_llamacpp_fails_clearly(tmp_path: Path) -> None:
    args = {"install_dir": str(tmp_path / "none"), "env_file": str(tmp_path / "none.env")}
    result = json.loads(run_module("llamacpp_tune", tmp_path, args).stdout)
    assert result["failed"] is True and "llama.cpp is not configured here" in result["msg"]


def test_the_installed_build_is_named_after_the_markers_baseline(tmp_path: Path) -> None:
    (tmp_path / ".animaflow-installed").write_text(json.dumps({"build_key": "b-broken-cpu-x86_64-avx2"}))
    assert module._installed_build(str(tmp_path)) == "avx2"
    assert module._installed_build(str(tmp_path / "missing")) == "installed"


def test_bench_measure_asks_the_benchmark_client_for_each_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    from ansible_collections.animaflow.inference.plugins.module_utils import llm_bench

    seen: list[Any] = []

    async def fake_run(config: Any) -> dict[str, Any]:
        seen.append(config)
        failed = 1 if config.concurrency == [4] and len(seen) > 2 else 0
        level = {"failed": failed, "errors": {"timeout": failed} if failed else {}}
        return {"levels": [{**level, "decode_tokens_per_s_median": 50.0, "output_tokens_per_s": 120.0}]}

    monkeypatch.setattr(llm_bench, "run_benchmark", fake_run)
    config = lt.TuneConfig(binaries={"a": "/x"}, base_env={}, derived=DERIVED, model="m", requests=3)
    measure = lt.bench_measure(config)
    assert measure("http://127.0.0.1:1", "decode") == {"value": 50.0, "failed_requests": 0, "error": None}
    assert measure("http://127.0.0.1:1", "throughput")["value"] == 120.0
    assert (seen[0].concurrency, seen[0].requests_per_level) == ([1], 3)
    assert (seen[1].concurrency, seen[1].requests_per_level) == ([4], 4)  # whole batches of 4
    assert seen[0].warmup_requests == 0 and seen[0].ignore_eos is True
    failed = measure("http://127.0.0.1:1", "throughput")
    assert failed["value"] is None and "1 of 4 requests failed" in failed["error"]
    measure("http://127.0.0.1:1", "warmup", slots=6)  # every slot at once
    assert (seen[-1].concurrency, seen[-1].requests_per_level) == ([6], 6)


def test_with_nothing_to_try_derived_is_still_measured() -> None:
    result, launcher = run_tune({}, axes=["ctx"], derived_override={"ctx_per_slot": 0})
    assert [block["label"] for block in result["blocks"]] == ["derived"]
    assert result["phases"][0][0]["median_decode"] == 100.0
    assert (
        result["derived_vs_best"] == {"decode": 1.0, "throughput": 1.0}
        and result["winner"]["label"] == "derived"
    )
    assert launcher.running == set()


def test_phase_two_measures_a_lucky_candidate_again_and_its_figures_count() -> None:
    """threads=1 reads 20 % faster in its first block only (a quiet moment): the screen promotes it, the
    second phase on fresh data finds it equal, so derived stays and derived / best is 1."""
    config = threads_sweep("/x")
    launcher = FakeLauncher()
    blocks_seen: list[str] = []

    def measure(url: str, metric: str, slots: int = 1) -> dict[str, Any]:
        threads = launcher.envs[url]["LLAMA_ARG_THREADS"]
        if metric == "warmup" and threads == "1":
            blocks_seen.append(url)
        lucky = threads == "1" and len(blocks_seen) == 1
        return {"value": 120.0 if lucky else 100.0, "failed_requests": 0, "error": None}

    result = lt.tune(config, launcher, measure)
    screen, confirmed = result["phases"]
    assert screen[1]["score_decode"] == 1.2 and confirmed[1]["score_decode"] == 1.0
    assert len(confirmed[1]["ratios_decode"]) == 5 and result["workload"]["confirm_rounds"] == 5
    assert result["derived_vs_best"] == {"decode": 1.0, "throughput": 1.0}
    assert result["winner"]["label"] == "derived" and result["suggestion"]["set"] == {}
