"""The decode bound's bandwidth: a read-only CPU measurement with the server's threads, the GPU's
figure for a GPU server (never the host's), and what the benchmark playbook passes for each."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from module_runner import run_module

from ansible_collections.animaflow.inference.plugins.module_utils import llm_bench_host
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_host import (
    default_threads,
    l3_cache_bytes,
    measure_read_bandwidth,
    memory_bandwidth,
)

REPO = Path(__file__).resolve().parents[2]
pytest_plugins = ["conftest_bench"]


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small buffers and short rounds: these tests check what is measured, not how fast."""
    monkeypatch.setattr(llm_bench_host, "MIN_BUFFER_MIB", 16)
    monkeypatch.setattr(llm_bench_host, "ROUND_TARGET_S", 0.005)
    monkeypatch.setattr(llm_bench_host, "l3_cache_bytes", lambda: None)


@pytest.mark.parametrize("threads", [1, 2])
def test_reads_with_the_threads_asked_for_and_says_what_it_timed(threads: int) -> None:
    result = measure_read_bandwidth(threads, buffer_mib=16, repeats=2, threads_reason="the server's threads")
    assert result["source"] == "measured_cpu_read" and result["threads"] == threads
    assert 0.1 < result["gbps"] < 100_000 and len(result["rounds_gbps"]) == 2
    assert result["gbps"] == max(result["rounds_gbps"])
    method = result["method"]
    assert method.startswith(f"read-only: {threads} thread(s) (the server's threads;")
    assert f"its own {16 // threads} MiB buffer (16 MiB in all" in method
    assert "libc memchr through ctypes (releases the GIL)" in method and "best of 2 rounds" in method


def test_without_ctypes_one_reader_and_the_method_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llm_bench_host, "_memchr_scanner", lambda: None)
    result = measure_read_bandwidth(4, buffer_mib=16, repeats=1)
    assert (
        result["threads"] == 1
        and "bytearray.find" in result["method"]
        and "a lower bound" in result["method"]
    )


def test_l3_is_counted_once_per_cache_instance(tmp_path: Path) -> None:
    for cpu, shared in (("cpu0", "0-1"), ("cpu1", "0-1"), ("cpu2", "2-3"), ("cpu3", "2-3")):
        for index, level, size in (("index0", "1", "32K"), ("index3", "3", "32768K")):
            path = tmp_path / cpu / "cache" / index
            path.mkdir(parents=True)
            (path / "level").write_text(level + "\n")
            (path / "size").write_text(size + "\n")
            (path / "shared_cpu_list").write_text(shared + "\n")
    (tmp_path / "cpufreq").mkdir()
    assert l3_cache_bytes(str(tmp_path)) == 64 << 20
    assert l3_cache_bytes(str(tmp_path / "missing")) is None


def test_default_threads_are_the_physical_cores() -> None:
    assert default_threads({"physical_cores": 24})[0] == 24
    assert "physical cores (cpu facts)" in default_threads({"physical_cores": 24})[1]
    count, reason = default_threads(None)
    assert count >= 1 and reason


def test_sources(small: None, monkeypatch: pytest.MonkeyPatch) -> None:
    given = memory_bandwidth("cpu", given_gbps=3350.0)
    assert given == {
        "gbps": 3350.0,
        "source": "given",
        "method": "given by the caller (memory_bandwidth_gbps)",
    }
    cpu = memory_bandwidth(
        "auto", cpu_facts={"physical_cores": 2}, gpu_facts={"accelerator": "cpu", "gpus": []}
    )
    assert cpu["source"] == "measured_cpu_read" and cpu["threads"] == 2
    assert "the node's physical cores (cpu facts)" in cpu["method"]
    server = memory_bandwidth("cpu", threads=1)
    assert server["threads"] == 1 and "(the server's threads;" in server["method"]

    def no_host_measurement(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a GPU server must not get the host's bandwidth")

    monkeypatch.setattr(llm_bench_host, "measure_read_bandwidth", no_host_measurement)
    h100 = {"accelerator": "cuda", "gpus": [{"name": "NVIDIA H100 80GB HBM3", "used": True}] * 2}
    auto = memory_bandwidth("auto", gpu_facts=h100, backend="vllm")
    assert auto["source"] == "gpu_datasheet" and auto["gbps"] == 6700.0
    assert memory_bandwidth("gpu", gpu_facts=h100, backend="llamacpp")["gbps"] == 3350.0  # layer split
    unknown = memory_bandwidth(
        "gpu", gpu_facts={"accelerator": "cuda", "gpus": [{"name": "NVIDIA Tesla K80"}]}
    )
    assert unknown["gbps"] is None and "no datasheet figure for NVIDIA Tesla K80" in unknown["method"]
    with pytest.raises(ValueError, match="memory_bandwidth_source"):
        memory_bandwidth("disk")
    with pytest.raises(ValueError, match="gpu_split"):
        memory_bandwidth("gpu", gpu_split="pipeline")


def test_a_failed_measurement_gives_no_bound_not_a_failed_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("memory read measurement failed: MemoryError()")

    monkeypatch.setattr(llm_bench_host, "measure_read_bandwidth", fails)
    assert memory_bandwidth("cpu", threads=2) == {
        "gbps": None,
        "source": None,
        "method": "memory read measurement failed: MemoryError()",
    }


# What playbooks/tasks/benchmark_backend.yml passes, rendered by Ansible's own templating from the
# server's unit and environment file as the role wrote them.
GPU_UNIT = "ExecStart={root}/vllm/current/venv/bin/vllm serve /m --tensor-parallel-size 4 --port 8000\nDevicePolicy=closed\nDeviceAllow=char-nvidia-frontend rw\n"
CPU_UNIT = (
    "ExecStart=/opt/animaflow/llamacpp/current/bin/llama-server\nPrivateDevices=yes\nDevicePolicy=closed\n"
)
LLAMA_GPU_UNIT = "ExecStart=/opt/animaflow/llamacpp/current/bin/llama-server\nDevicePolicy=closed\nDeviceAllow=char-kfd rw\n"


def _trust(value: Any) -> Any:
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: _trust(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trust(item) for item in value]
    return value


def playbook_arguments(
    backend: str, unit: str, env: str, accelerator: str, probe: bool = False
) -> dict[str, Any]:
    tasks = yaml.safe_load((REPO / "playbooks" / "tasks" / "benchmark_workload.yml").read_text())
    task = next(task for task in tasks[0]["block"] if "animaflow.inference.llm_benchmark" in task)
    arguments = _trust(task["animaflow.inference.llm_benchmark"])
    files = [{"content": base64.b64encode(text.encode()).decode()} for text in (unit, env)]
    variables = {
        "benchmark_backend": backend,
        "animaflow_install_root": "/opt/animaflow",
        "ansible_facts": {"animaflow_gpu": {"accelerator": accelerator}},
        "benchmark_server_files": {"results": files},
        "benchmark_gpu_probe": probe,
        **_trust(task["vars"]),
    }
    templar = Templar(loader=DataLoader(), variables=variables)
    rendered = {}
    for name in ("memory_bandwidth_source", "threads", "gpus_used", "gpu_python"):
        try:
            rendered[name] = templar.template(arguments[name])
        except Exception as error:  # omit: ansible-core raises for a top-level omitted value
            if "Omit" not in type(error).__name__:
                raise
    return rendered


def test_the_playbook_passes_the_servers_threads_or_its_gpus() -> None:
    vllm = GPU_UNIT.format(root="/opt/animaflow")
    assert playbook_arguments("vllm", vllm, 'HOME="/x"\n', "cuda") == {
        "memory_bandwidth_source": "gpu",
        "gpus_used": "4",
    }
    assert playbook_arguments("vllm", vllm, "", "cuda", probe=True)["gpu_python"] == (
        "/opt/animaflow/vllm/current/venv/bin/python"
    )
    cpu_env = 'LLAMA_ARG_THREADS="6"\nLLAMA_ARG_N_GPU_LAYERS="0"\n'
    assert playbook_arguments("llamacpp", CPU_UNIT, cpu_env, "cpu") == {
        "memory_bandwidth_source": "cpu",
        "threads": "6",
    }
    # A CPU build on a GPU node: the unit may open the GPU but no layer is offloaded.
    assert playbook_arguments("llamacpp", LLAMA_GPU_UNIT, cpu_env, "rocm")["memory_bandwidth_source"] == "cpu"
    gpu_env = 'LLAMA_ARG_THREADS="6"\nLLAMA_ARG_N_GPU_LAYERS="999"\n'
    assert playbook_arguments("llamacpp", LLAMA_GPU_UNIT, gpu_env, "rocm") == {
        "memory_bandwidth_source": "gpu"
    }
    # Ollama's unit without GPU devices (ollama_accelerator: cpu) on a GPU node: the CPU's bandwidth.
    assert playbook_arguments("ollama", CPU_UNIT, 'OLLAMA_HOST="x"\n', "cuda") == {
        "memory_bandwidth_source": "cpu"
    }


def test_the_module_warns_when_the_bound_is_wrong(tmp_path: Path, sse_server) -> None:
    """A 7B model at ~170 tokens/s against the host's bandwidth: no fraction, an Ansible warning."""
    url = sse_server(
        "--host",
        "127.0.0.91",
        "--ttfr-ms",
        "1",
        "--ttft-ms",
        "2",
        "--interval-ms",
        "5",
        "--tokens-per-chunk",
        "1",
    )
    args = {
        "base_url": url,
        "model": "m",
        "concurrency": [1],
        "requests_per_level": 2,
        "output_tokens": 8,
        "warmup_requests": 0,
        "memory_bandwidth_gbps": 18.0,
        "model_bytes": 4920734176,
    }
    done = run_module("llm_benchmark", tmp_path, args)
    result = json.loads(done.stdout)
    bound = result["benchmark"]["decode_bound"]
    assert bound["achieved_fraction"] is None and bound["source"] == "given"
    assert "decode bound: the bound is wrong, not the server" in json.dumps(result["warnings"])
    assert result["benchmark"]["host"]["memory_bandwidth_source"] == "given"
