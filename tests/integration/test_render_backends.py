"""Units and environment files of Ollama, vLLM and SGLang rendered for recorded GPU nodes.

tests/integration/render/facts/*.json are gpu_facts results on recorded tool outputs
(record_facts.py): 8x H100 and RTX 4090 (driver 550), 2x MI300X and Radeon RX 7900 XTX (ROCm), a CPU
server. render/render.yml runs each role's preflight against them (through a JSON fact cache, on
localhost connections) and renders the shared unit and environment templates; nothing is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RENDER = Path(__file__).resolve().parent / "render"
NODES = sorted(p.stem for p in (RENDER / "facts").glob("*.json"))
OLLAMA_VERSION = "0.32.15"
GiB = 1 << 30


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """A mirror with placeholder artifacts (their sizes declared in the inventory) and an inventory."""
    base = tmp_path_factory.mktemp("render")
    mirror = base / "mirror"
    release = mirror / "ollama" / f"v{OLLAMA_VERSION}"
    release.mkdir(parents=True)
    for name in (
        "ollama-linux-amd64.tar.zst",
        "ollama-linux-amd64-rocm.tar.zst",
        "ollama-linux-arm64.tar.zst",
    ):
        (release / name).write_bytes(f"placeholder {name}\n".encode())
    (release / "sha256sum.txt").write_text(
        "".join(f"{sha256(release / n)}  ./{n}\n" for n in sorted(p.name for p in release.glob("*.tar.zst")))
    )
    (mirror / "models").mkdir()
    models = []
    for name, fmt, size, extra in (
        ("llama-3.1-8b-instruct-q4", "gguf", 4_920_000_000, {"context": 131072}),
        ("llama-3.1-8b-instruct", "hf", 16_060_000_000, {"context": 131072, "attention_heads": 32}),
        ("llama-3.1-70b-instruct", "hf", 141_100_000_000, {"context": 131072, "attention_heads": 64}),
    ):
        file = mirror / "models" / f"{name}.{'gguf' if fmt == 'gguf' else 'tar'}"
        file.write_bytes(f"placeholder {name}\n".encode())
        models.append(
            {
                "name": name,
                "file": file.name,
                "sha256": sha256(file),
                "format": fmt,
                "size_bytes": size,
                **extra,
            }
        )
    inventory = {
        "all": {
            "hosts": {
                node: {"ansible_connection": "local", "animaflow_bind_address": f"127.0.0.{i + 11}"}
                for i, node in enumerate(NODES)
            },
            "vars": {
                "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
                "animaflow_artifact_mirror": str(mirror),
                "animaflow_api_key": "render-test-key-0123",
                "animaflow_models": models,
                "animaflow_studio": {
                    "name": "render",
                    "artists": 40,
                    "concurrent_users": 12,
                    "workload": "interactive",
                },
                "ollama_version": OLLAMA_VERSION,
            },
        }
    }
    (base / "inventory.json").write_text(json.dumps(inventory))
    return base


def render(farm: Path, backend: str, model: str, **extra) -> dict[str, dict[str, str]]:
    out = farm / f"out-{backend}-{model}-{len(extra)}"
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANIMAFLOW_CACHE_DIR=str(farm / "controller-cache"),
        ANSIBLE_FORCE_COLOR="0",
    )
    extra_vars = {"render_backend": backend, "render_dir": str(out), "animaflow_model": model, **extra}
    proc = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "ansible-playbook"),
            "-i",
            str(farm / "inventory.json"),
            str(RENDER / "render.yml"),
            "-e",
            json.dumps(extra_vars),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    result = {}
    for node in NODES:
        files = {p.name: p.read_text() for p in (out / node).glob("*")}
        result[node] = files
    return result


def exec_start(unit: str) -> list[str]:
    line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def env_of(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value.strip('"') for key, value in pairs}


@pytest.fixture(scope="module")
def vllm_8b(farm):
    return render(farm, "vllm", "llama-3.1-8b-instruct")


@pytest.fixture(scope="module")
def vllm_70b(farm):
    return render(farm, "vllm", "llama-3.1-70b-instruct")


def test_vllm_8x_h100_serves_70b_with_tensor_parallel_8(vllm_70b):
    files = vllm_70b["h100x8"]
    argv = exec_start(files["unit"])
    assert argv[:3] == [
        "/opt/animaflow/vllm/current/venv/bin/vllm",
        "serve",
        "/var/lib/animaflow/models/llama-3.1-70b-instruct",
    ]
    assert option(argv, "--tensor-parallel-size") == "8"
    assert (option(argv, "--host"), option(argv, "--port")) == ("127.0.0.12", "8000")
    assert option(argv, "--served-model-name") == "llama-3.1-70b-instruct"
    assert option(argv, "--gpu-memory-utilization") == "0.9"
    assert option(argv, "--max-model-len") == "32768"
    assert option(argv, "--max-num-seqs") == "24"  # 12 concurrent users x 2
    assert "--enable-prefix-caching" in argv and "--api-key" not in argv
    env = env_of(files["env"])
    assert env["VLLM_API_KEY"] == "render-test-key-0123"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert "MemoryDenyWriteExecute" not in files["unit"] and "DeviceAllow=char-nvidia-uvm rw" in files["unit"]


def test_vllm_rtx_4090_uses_one_gpu_and_refuses_70b(vllm_8b, vllm_70b):
    assert option(exec_start(vllm_8b["rtx4090"]["unit"]), "--tensor-parallel-size") == "1"
    refusal = vllm_70b["rtx4090"]["refused.txt"]
    assert "llama-3.1-70b-instruct needs about" in refusal and "MiB" in refusal


def test_vllm_and_its_wheel_variant_follow_the_driver(farm, vllm_8b):
    # Driver 550 on both recorded NVIDIA nodes: the CUDA 13 wheel (R580+) is not usable, cu129 is.
    assert "unit" in vllm_8b["h100x8"]
    cu130 = render(farm, "vllm", "llama-3.1-8b-instruct", vllm_wheel_variant="cu130")
    assert "R580+" in cu130["h100x8"]["refused.txt"]


@pytest.mark.parametrize("node", ["mi300x2", "rx7900xtx", "cpu"])
def test_vllm_refuses_amd_and_cpu_nodes_naming_the_hardware(vllm_8b, node):
    refusal = vllm_8b[node]["refused.txt"]
    assert refusal.startswith(f"{node} has no NVIDIA GPU (")
    assert "vLLM needs NVIDIA compute capability 7.5+. Use llama.cpp or Ollama on this node." in refusal
    if node == "cpu":
        assert "CPU only: 32 cores" in refusal
    else:
        assert "AMD: " in refusal and "GiB VRAM" in refusal


def test_sglang_8x_h100_on_the_cuda_12_lane(farm):
    default = render(farm, "sglang", "llama-3.1-70b-instruct")
    assert "sglang_version=0.5.19" in default["h100x8"]["refused.txt"]  # 0.5.23 needs CUDA 13 = R580+
    files = render(farm, "sglang", "llama-3.1-70b-instruct", sglang_version="0.5.19")
    argv = exec_start(files["h100x8"]["unit"])
    assert argv[:3] == ["/opt/animaflow/sglang/current/venv/bin/python", "-m", "sglang.launch_server"]
    assert option(argv, "--tp-size") == "8"
    assert option(argv, "--model-path") == "/var/lib/animaflow/models/llama-3.1-70b-instruct"
    assert option(argv, "--config") == "/etc/animaflow/sglang.yaml"  # holds the API key
    assert option(argv, "--mem-fraction-static") == "0.85"
    assert option(argv, "--context-length") == "32768"
    assert option(argv, "--max-running-requests") == "24"
    assert "--enable-metrics" in argv and "--api-key" not in argv
    assert "render-test-key" not in files["h100x8"]["unit"]
    small = render(farm, "sglang", "llama-3.1-8b-instruct", sglang_version="0.5.19")
    assert option(exec_start(small["rtx4090"]["unit"]), "--tp-size") == "1"
    for node in ("mi300x2", "rx7900xtx", "cpu"):
        assert "SGLang needs NVIDIA compute capability 7.5+" in small[node]["refused.txt"]


@pytest.fixture(scope="module")
def ollama(farm):
    return render(farm, "ollama", "llama-3.1-8b-instruct-q4")


@pytest.mark.parametrize("node", ["mi300x2", "rx7900xtx"])
def test_ollama_amd_nodes_get_the_rocm_archive_and_gpu_settings(ollama, node):
    env = env_of(ollama[node]["env"])
    assert env["OLLAMA_FLASH_ATTENTION"] == "1"
    assert "DeviceAllow=/dev/kfd rw" in ollama[node]["unit"]
    assert exec_start(ollama[node]["unit"]) == ["/opt/animaflow/ollama/current/bin/ollama", "serve"]


def test_ollama_archives_per_node(farm):
    # Which archives each node unpacks is the role's _ollama_archives; the marker records them.
    text = (ROOT / "roles" / "ollama" / "vars" / "main.yml").read_text()
    assert "ollama-linux-amd64-rocm.tar.zst" in text


def test_ollama_environment_per_hardware(ollama):
    h100 = env_of(ollama["h100x8"]["env"])
    assert h100["OLLAMA_HOST"] == "127.0.0.12:8000"
    assert h100["OLLAMA_MODELS"] == "/var/lib/animaflow/models/ollama"
    assert h100["OLLAMA_NUM_PARALLEL"] == "12"  # concurrent users; 637 GiB VRAM is plenty
    assert h100["OLLAMA_CONTEXT_LENGTH"] == "4096"
    assert h100["OLLAMA_KEEP_ALIVE"] == "30m"
    assert h100["OLLAMA_FLASH_ATTENTION"] == "1"
    cpu = env_of(ollama["cpu"]["env"])
    assert "OLLAMA_FLASH_ATTENTION" not in cpu
    assert (
        "PrivateDevices=yes" in ollama["cpu"]["unit"]
        and "MemoryDenyWriteExecute=yes" in ollama["cpu"]["unit"]
    )
    assert "ReadWritePaths=/var/lib/animaflow/models/ollama" in ollama["cpu"]["unit"]
