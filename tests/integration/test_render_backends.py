"""Units and environment files of Ollama, vLLM and SGLang rendered for recorded GPU nodes.

tests/integration/render/facts/*.json are gpu_facts results on recorded tool outputs
(record_facts.py): 8x H100 and RTX 4090 (driver 550), 2x MI300X and Radeon RX 7900 XTX (ROCm), a CPU
server. render/render.yml runs each role's preflight against them (through a JSON fact cache, on
localhost connections) and renders the shared unit and environment templates; nothing is installed.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import pytest
from playbook_runner import run_playbook

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
                # Placeholder archives: the mirror's sha256sum.txt vouches for them, not the upstream pins.
                "ollama_checksums": {},
            },
        }
    }
    (base / "inventory.json").write_text(json.dumps(inventory))
    return base


def render(farm: Path, backend: str, model: str, limit: str = "all", **extra) -> dict[str, dict[str, str]]:
    """{node: {file: text}} for the nodes of `limit`: unit, env, secrets, install_info.json, or refused.txt."""
    key = hashlib.sha256(json.dumps([backend, model, limit, extra], sort_keys=True).encode()).hexdigest()[:12]
    out = farm / f"out-{backend}-{model}-{key}"
    out.mkdir(exist_ok=True)
    proc = run_playbook(
        RENDER / "render.yml",
        "--limit",
        limit,
        inventory=farm / "inventory.json",
        extra_vars={"render_backend": backend, "render_dir": str(out), "animaflow_model": model, **extra},
        env={"ANIMAFLOW_CACHE_DIR": str(farm / "controller-cache")},
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return json.loads((out / "rendered.json").read_text())


def exec_start(unit: str) -> list[str]:
    line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def env_of(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value.strip('"') for key, value in pairs}


# The recorded NVIDIA nodes have driver 550: the CUDA 12.9 lane, whose newest vLLM is 0.31.0.
VLLM_CUDA12 = "0.31.0"


@pytest.fixture(scope="module")
def vllm_8b(farm):
    return render(farm, "vllm", "llama-3.1-8b-instruct", vllm_version=VLLM_CUDA12)


@pytest.fixture(scope="module")
def vllm_70b(farm):
    return render(farm, "vllm", "llama-3.1-70b-instruct", limit="h100x8,rtx4090", vllm_version=VLLM_CUDA12)


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
    # The key is in the secrets file only (never shown by --diff), the settings in the other.
    assert env_of(files["secrets"])["VLLM_API_KEY"] == "render-test-key-0123"
    assert "VLLM_API_KEY" not in env and "render-test-key" not in files["env"]
    assert env["HF_HUB_OFFLINE"] == "1"
    assert "MemoryDenyWriteExecute" not in files["unit"] and "DeviceAllow=char-nvidia-uvm rw" in files["unit"]


def test_vllm_rtx_4090_uses_one_gpu_and_refuses_70b(vllm_8b, vllm_70b):
    assert option(exec_start(vllm_8b["rtx4090"]["unit"]), "--tensor-parallel-size") == "1"
    refusal = vllm_70b["rtx4090"]["refused.txt"]
    assert "llama-3.1-70b-instruct needs about" in refusal and "MiB" in refusal


def test_a_tensor_parallel_size_that_does_not_divide_the_heads_is_refused(farm):
    # The heads are known once the model is resolved: the check runs after it (before, it saw 0 heads).
    files = render(
        farm, "sglang", "llama-3.1-70b-instruct", "h100x8", sglang_version="0.5.19", sglang_tp_size=6
    )
    refusal = files["h100x8"]["refused.txt"]
    assert "tensor parallel size of at most the 8 GPUs that divides the 64 attention heads" in refusal
    assert "(got 6)" in refusal and "Fix: sglang_tp_size (0 chooses)" in refusal


SECRET = "S3cr3t-pip-T0ken"
PROXY = f"https://farm:{SECRET}@pypi.studio.example/simple"
DRIVER_580 = {"driver_version": "580.95.05"}

# (backend, extra vars, GPU facts override) -> the variant and pip sources installed, or the refusal's phrases.
# Node: the recorded 8x H100 (driver 550.54.15 unless overridden).
VARIANT_CASES = {
    "vllm-default-driver-550": (
        "vllm",
        {},
        None,
        [
            "h100x8 (driver 550.54.15): vLLM 0.33.0 has no cu129 wheel.",
            "vLLM 0.33.0 exists as cu130 (driver 580+); the variants: cu130 (driver 580+) for vLLM 0.29.0,",
            "cu129 (driver 550+) for vLLM 0.29.0, 0.30.0, 0.31.0.",
            "Fix: pin vllm_version=0.31.0 for this node (cu129 runs on its driver), or update the driver to R580+",
        ],
    ),
    "vllm-cuda12-lane-behind-a-proxy": (
        "vllm",
        {"vllm_version": "0.31.0", "vllm_pip_index_url": PROXY},
        None,
        {
            "variant": "cu129",
            "pip_sources": [
                "https://pypi.studio.example/simple",
                "https://wheels.vllm.ai/0.31.0/cu129",
                "https://download.pytorch.org/whl/cu129",
            ],
        },
    ),
    "vllm-default-driver-580": ("vllm", {}, DRIVER_580, {"variant": "cu130", "pip_sources": []}),
    "vllm-cu130-on-driver-550": (
        "vllm",
        {"vllm_version": "0.31.0", "vllm_wheel_variant": "cu130"},
        None,
        [
            "h100x8 (driver 550.54.15): the cu130 wheel needs driver 580+.",
            "exists as cu130 (driver 580+), cu129",
        ],
    ),
    "vllm-unknown-variant": (
        "vllm",
        {"vllm_wheel_variant": "cu128"},
        DRIVER_580,
        ["vllm_wheel_variant=cu128 is not a key of vllm_wheel_variants.", "pin vllm_version=0.33.0"],
    ),
    "sglang-default-driver-550": (
        "sglang",
        {},
        None,
        [
            "h100x8 (driver 550.54.15): SGLang 0.5.23 has no cu129 wheel.",
            "cu129 (driver 550+) for SGLang 0.5.19.",
            "Fix: pin sglang_version=0.5.19 for this node (cu129 runs on its driver), or update the driver to R580+",
        ],
    ),
    "sglang-cuda12-lane-behind-a-proxy": (
        "sglang",
        {"sglang_version": "0.5.19", "sglang_pip_index_url": PROXY},
        None,
        {
            "variant": "cu129",
            "pip_sources": [
                "https://pypi.studio.example/simple",
                "https://docs.sglang.io/whl/cu129",
                "https://download.pytorch.org/whl/cu129",
            ],
        },
    ),
    "sglang-default-driver-580": ("sglang", {}, DRIVER_580, {"variant": "cu130", "pip_sources": []}),
    "vllm-wheelhouse-behind-credentials": (
        "vllm",
        {"vllm_version": "0.31.0", "vllm_wheelhouse": f"https://farm:{SECRET}@wheels.studio.example/vllm"},
        None,
        {"variant": "cu129", "pip_sources": ["https://wheels.studio.example/vllm"]},
    ),
}


def test_the_mirror_wheelhouse_replaces_the_indexes(farm):
    files = render(farm, "vllm", "llama-3.1-8b-instruct", limit="h100x8", vllm_version="0.31.0")["h100x8"]
    info = json.loads(files["install_info.json"])
    assert info == {"variant": "cu129", "pip_sources": ["/var/cache/animaflow/vllm/0.31.0-cu129"]}


def without_mirror(farm: Path) -> dict:
    """No artifact mirror (so pip uses the indexes, not a wheelhouse); the models come by file:// URL."""
    inventory = json.loads((farm / "inventory.json").read_text())["all"]["vars"]
    models = [
        {**{k: v for k, v in m.items() if k != "file"}, "url": f"file://{farm}/mirror/models/{m['file']}"}
        for m in inventory["animaflow_models"]
    ]
    return {"animaflow_artifact_mirror": "", "animaflow_models": models}


@pytest.mark.parametrize("case", sorted(VARIANT_CASES))
def test_wheel_variant_table(farm, case):
    backend, extra, gpu, expected = VARIANT_CASES[case]
    extra = {**without_mirror(farm), **extra}
    if gpu:
        extra = {**extra, "render_gpu_override": gpu}
    files = render(farm, backend, "llama-3.1-8b-instruct", limit="h100x8", **extra)["h100x8"]
    if isinstance(expected, list):
        refusal = " ".join(files["refused.txt"].split())
        assert "unit" not in files
        for phrase in expected:
            assert phrase in refusal, refusal
        assert refusal.count("Nothing was changed.") == 1
        return
    assert "refused.txt" not in files, files.get("refused.txt")
    assert json.loads(files["install_info.json"]) == expected
    # Index credentials go to pip through its environment only: never into the marker, unit or env file.
    assert all(SECRET not in text for text in files.values())


@pytest.mark.parametrize("node", ["mi300x2", "rx7900xtx", "cpu"])
def test_vllm_refuses_amd_and_cpu_nodes_naming_the_hardware(vllm_8b, node):
    refusal = vllm_8b[node]["refused.txt"]
    assert refusal.startswith(f"{node} has no NVIDIA GPU (")
    assert "vLLM needs NVIDIA compute capability 7.5+. Use llama.cpp or Ollama on this node." in refusal
    if node == "cpu":
        assert "CPU only: 32 cores" in refusal
    else:
        assert "AMD: " in refusal and "GiB VRAM" in refusal


@pytest.fixture(scope="module")
def sglang_8b(farm):
    return render(farm, "sglang", "llama-3.1-8b-instruct", sglang_version="0.5.19")


def test_sglang_8x_h100_on_the_cuda_12_lane(farm, sglang_8b):
    default = render(farm, "sglang", "llama-3.1-70b-instruct", "h100x8")
    assert "sglang_version=0.5.19" in default["h100x8"]["refused.txt"]  # 0.5.23 needs CUDA 13 = R580+
    files = render(farm, "sglang", "llama-3.1-70b-instruct", "h100x8", sglang_version="0.5.19")
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
    assert option(exec_start(sglang_8b["rtx4090"]["unit"]), "--tp-size") == "1"
    for node in ("mi300x2", "rx7900xtx", "cpu"):
        assert "SGLang needs NVIDIA compute capability 7.5+" in sglang_8b[node]["refused.txt"]


@pytest.fixture(scope="module")
def ollama(farm):
    return render(farm, "ollama", "llama-3.1-8b-instruct-q4")


@pytest.mark.parametrize("node", ["mi300x2", "rx7900xtx"])
def test_ollama_amd_nodes_get_the_rocm_archive_and_gpu_settings(ollama, node):
    env = env_of(ollama[node]["env"])
    assert env["OLLAMA_FLASH_ATTENTION"] == "1"
    assert "DeviceAllow=char-kfd rw" in ollama[node]["unit"]  # the class: /dev/kfd may appear after start
    assert exec_start(ollama[node]["unit"]) == ["/opt/animaflow/ollama/current/bin/ollama", "serve"]


def test_ollama_archives_per_node(farm):
    # Which archives each node unpacks is the role's _ollama_archives; the marker records them.
    text = (ROOT / "roles" / "ollama" / "vars" / "main.yml").read_text()
    assert "ollama-linux-amd64-rocm.tar.zst" in text


def test_the_other_servers_keep_30_s_to_stop(vllm_8b, ollama):
    # Only llama-server's SIGTERM was measured (it never finishes an open request, so it gets 5 s,
    # checked live in molecule/gateway); the others keep the shared default.
    for unit in (vllm_8b["h100x8"]["unit"], ollama["cpu"]["unit"]):
        assert unit_settings(unit)["TimeoutStopSec"] == ["30"]


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


# Issue 14, "Units that let GPU backends run": each backend's hardening profile on recorded nodes. The
# Molecule scenario `units` starts a probe under these units; here the rendered settings are checked.
DEVICE_CLASSES = {
    "cuda": {"char-nvidia-frontend", "char-nvidia-uvm", "char-nvidia-caps"},
    "rocm": {"char-kfd", "char-drm"},
}
ACCELERATOR = {"h100x8": "cuda", "rtx4090": "cuda", "mi300x2": "rocm", "rx7900xtx": "rocm"}


def unit_settings(unit: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def claimed_exposure(unit: str) -> str | None:
    prefix = "# Claimed exposure (systemd-analyze security, systemd 252): "
    return next((line.removeprefix(prefix) for line in unit.splitlines() if line.startswith(prefix)), None)


def assert_gpu_profile(unit: str, accelerator: str, netlink: bool, claim: str) -> None:
    s = unit_settings(unit)
    # /proc/meminfo, /proc/cpuinfo, /proc/driver stay readable; other processes stay invisible.
    assert s["ProcSubset"] == ["all"] and s["ProtectProc"] == ["invisible"]
    families = set(s["RestrictAddressFamilies"][0].split())
    assert families == {"AF_INET", "AF_INET6", "AF_UNIX"} | ({"AF_NETLINK"} if netlink else set())
    assert s["DevicePolicy"] == ["closed"]
    assert {entry.removesuffix(" rw") for entry in s["DeviceAllow"]} == DEVICE_CLASSES[accelerator]
    assert "PrivateDevices" not in s and "PrivateUsers" not in s
    assert claimed_exposure(unit) == claim


@pytest.mark.parametrize("node", ["h100x8", "rtx4090"])
def test_vllm_unit_reads_proc_opens_netlink_and_nvidia_devices_only(vllm_8b, node):
    assert_gpu_profile(vllm_8b[node]["unit"], "cuda", netlink=True, claim="1.5")


def test_sglang_unit_reads_proc_opens_netlink_and_nvidia_devices_only(sglang_8b):
    for node in ("h100x8", "rtx4090"):
        assert_gpu_profile(sglang_8b[node]["unit"], "cuda", netlink=True, claim="1.5")


@pytest.mark.parametrize("node", ["h100x8", "rtx4090", "mi300x2", "rx7900xtx"])
def test_ollama_unit_reads_proc_and_its_accelerators_devices_without_netlink(ollama, node):
    assert_gpu_profile(ollama[node]["unit"], ACCELERATOR[node], netlink=False, claim="1.4")


def test_ollama_cpu_unit_reads_proc_meminfo_but_sees_no_devices(ollama):
    s = unit_settings(ollama["cpu"]["unit"])
    assert s["ProcSubset"] == ["all"]  # Ollama sizes models from /proc/meminfo even on CPU
    assert s["PrivateDevices"] == ["yes"] and s["DevicePolicy"] == ["closed"] and "DeviceAllow" not in s
    assert set(s["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert claimed_exposure(ollama["cpu"]["unit"]) == "1.1"
