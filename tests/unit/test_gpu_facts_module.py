"""gpu_facts run as Ansible runs it, with fake tools on PATH that print recorded outputs, fail,
print nothing or hang; and once for real through `ansible localhost` on this machine."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from module_runner import OLDEST_NODE_PYTHON, node_python, run_through_ansible
from module_runner import run_module as run_collection_module

from ansible_collections.animaflow.inference.plugins.modules import gpu_facts

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "unit" / "fixtures" / "gpu"
STANDINS = REPO / "tests" / "standins"
GPU_TOOLS = ("nvidia-smi", "rocm-smi", "amd-smi")


def prints(fixture: str, rc: int = 0) -> str:
    return f"#!/bin/sh\n/bin/cat '{FIXTURES / fixture}'\nexit {rc}\n"


def nvidia_smi(query: str, banner: str) -> str:
    """A fake nvidia-smi: the query rows for --query-gpu, the banner table otherwise."""
    return (
        '#!/bin/sh\ncase "$1" in\n'
        f"  --query-gpu=*) /bin/cat '{FIXTURES / query}' ;;\n"
        f"  *) /bin/cat '{FIXTURES / banner}' ;;\nesac\n"
    )


def run_module(tmp_path: Path, tools: dict[str, str], **args: Any) -> dict[str, Any]:
    """Run the module in a subprocess whose PATH holds only the given fake tools (and timeout)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Every test sees some lspci so that a real one in /usr/sbin never leaks in.
    tools = {"lspci": prints("lspci_cpu_only_matrox.txt"), **tools}
    for name, script in tools.items():
        path = bin_dir / name
        path.write_text(script)
        path.chmod(0o755)
    # The stand-in starts with `#!/usr/bin/env python3`; the module needs coreutils timeout.
    for name, target in (("python3", os.path.realpath(sys.executable)), ("timeout", shutil.which("timeout"))):
        if target:
            (bin_dir / name).symlink_to(target)
    args.setdefault("dev_root", str(tmp_path / "dev"))
    args.setdefault("sysfs_root", str(tmp_path / "sys"))
    args.setdefault("rocm_path", str(tmp_path / "rocm"))
    done = run_collection_module(
        "gpu_facts", tmp_path, args, env={"PATH": str(bin_dir), "HOME": str(tmp_path)}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert not result.get("failed"), result
    # ansible-core 2.19 returns warnings as structured summaries ({"event": {"msg": ...}}).
    result["warning_texts"] = [
        warning["event"]["msg"] if isinstance(warning, dict) else warning
        for warning in result.get("warnings", [])
    ]
    return result


def test_standin_h100_node_is_cuda(tmp_path):
    result = run_module(
        tmp_path, {"nvidia-smi": (STANDINS / "nvidia-smi").read_text(), "lspci": prints("lspci_dgx_h100.txt")}
    )
    gpu = result["ansible_facts"]["animaflow_gpu"]
    assert (gpu["accelerator"], gpu["vendor"], gpu["count"]) == ("cuda", "nvidia", 8)
    assert (gpu["driver_version"], gpu["cuda_version"], gpu["total_memory_mib"]) == (
        "550.54.15",
        "12.4",
        652472,
    )
    assert gpu["gpus"][0]["compute_capability"] == "9.0"
    assert gpu["gpus"][3]["pci_bus_id"] == "0000:5d:00.0"
    assert gpu["sources"] == ["nvidia-smi", "lspci"]
    assert result["sources"] == ["nvidia-smi", "lspci", "cpuinfo", "meminfo"]
    assert result["changed"] is False
    assert result["warning_texts"] == []


def test_driver_that_cannot_talk_to_its_gpu_is_not_cuda(tmp_path):
    result = run_module(
        tmp_path,
        {"nvidia-smi": prints("nvidia_smi_failed.txt", rc=9), "lspci": prints("lspci_dgx_h100.txt")},
    )
    gpu = result["ansible_facts"]["animaflow_gpu"]
    assert (gpu["accelerator"], gpu["vendor"], gpu["count"]) == ("cpu", "nvidia", 8)
    assert gpu["cuda_version"] is None
    assert "nvidia-smi" not in result["sources"]
    (warning,) = result["warning_texts"]
    assert "not usable for CUDA" in warning and "nvidia-smi exited 9" in warning
    assert "couldn't communicate with the NVIDIA driver" in warning


def test_hanging_tool_is_stopped_after_the_timeout(tmp_path):
    if not shutil.which("timeout"):
        pytest.skip("coreutils timeout is not installed")
    started = time.monotonic()
    result = run_module(
        tmp_path,
        {"nvidia-smi": "#!/bin/sh\nexec /bin/sleep 60\n", "lspci": prints("lspci_dgx_h100.txt")},
        timeout=1,
    )
    assert time.monotonic() - started < 20
    gpu = result["ansible_facts"]["animaflow_gpu"]
    assert gpu["accelerator"] == "cpu"
    assert any("nvidia-smi timed out after 1 s" in warning for warning in result["warning_texts"])


def test_silent_and_broken_tools_never_fail_the_module(tmp_path):
    result = run_module(
        tmp_path,
        {
            "nvidia-smi": "#!/bin/sh\nexit 0\n",
            "amd-smi": "#!/bin/sh\necho 'amd-smi: AMDSMI_STATUS_INIT_ERROR' >&2\nexit 1\n",
            "rocm-smi": prints("rocm_smi_driver_not_initialized.txt", rc=0),
            "lspci": "#!/bin/sh\nexit 0\n",
            "vulkaninfo": "#!/this/interpreter/does/not/exist\n",
        },
    )
    gpu = result["ansible_facts"]["animaflow_gpu"]
    assert (gpu["accelerator"], gpu["vendor"], gpu["count"], gpu["gpus"]) == ("cpu", "none", 0, [])
    assert gpu["sources"] == []
    assert any("nvidia-smi printed no usable output" in warning for warning in result["warning_texts"])


def test_na_memory_still_counts_as_cuda(tmp_path):
    result = run_module(tmp_path, {"nvidia-smi": prints("nvidia_smi_query_gb10_na.txt")})
    gpu = result["ansible_facts"]["animaflow_gpu"]
    assert (gpu["accelerator"], gpu["count"], gpu["total_memory_mib"]) == ("cuda", 1, 0)
    assert gpu["gpus"][0]["memory_total_mib"] is None
    # The same fake answers the banner call with the query rows, so no CUDA version: warned.
    assert gpu["cuda_version"] is None
    assert any("no CUDA version" in warning for warning in result["warning_texts"])


def test_amd_smi_with_kfd_is_rocm(tmp_path):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "kfd").touch()
    (tmp_path / "rocm" / ".info").mkdir(parents=True)
    shutil.copy(FIXTURES / "rocm_version.txt", tmp_path / "rocm" / ".info" / "version")
    result = run_module(
        tmp_path,
        {
            "amd-smi": prints("amd_smi_static_gpu_data_mi300x.json"),
            "rocm-smi": "#!/bin/sh\necho should not be asked >&2\nexit 3\n",
            "lspci": prints("lspci_mi300x.txt"),
        },
    )
    gpu = result["ansible_facts"]["animaflow_gpu"]
    assert (gpu["accelerator"], gpu["vendor"], gpu["count"], gpu["total_memory_mib"]) == (
        "rocm",
        "amd",
        2,
        393184,
    )
    assert (gpu["driver_version"], gpu["rocm_version"]) == ("6.12.12", "6.1.2")
    assert [entry["gfx_target"] for entry in gpu["gpus"]] == ["gfx942", "gfx942"]
    assert gpu["sources"] == ["amd-smi", "lspci"]
    assert result["warning_texts"] == []


def test_rocm_smi_without_kfd_and_only_llvmpipe_is_cpu(tmp_path):
    result = run_module(
        tmp_path,
        {
            "rocm-smi": prints("rocm_smi_rx7900xtx.json"),
            "lspci": prints("lspci_ryzen_rx7900xtx.txt"),
            "vulkaninfo": prints("vulkaninfo_summary_llvmpipe_only.txt"),
        },
    )
    gpu = result["ansible_facts"]["animaflow_gpu"]
    assert (gpu["accelerator"], gpu["vendor"], gpu["count"]) == ("cpu", "amd", 1)
    assert gpu["gpus"][0]["gfx_target"] == "gfx1100"
    assert gpu["sources"] == ["rocm-smi", "lspci", "vulkaninfo"]
    assert any("/dev/kfd is missing" in warning for warning in result["warning_texts"])


def test_radeon_without_rocm_tools_is_vulkan_with_sysfs_memory(tmp_path):
    pci = tmp_path / "sys" / "devices" / "pci0000:00" / "0000:03:00.0"
    pci.mkdir(parents=True)
    (pci / "vendor").write_text("0x1002\n")
    (pci / "mem_info_vram_total").write_text("25753026560\n")
    (tmp_path / "sys" / "class" / "drm" / "card0").mkdir(parents=True)
    (tmp_path / "sys" / "class" / "drm" / "card0" / "device").symlink_to(pci)
    result = run_module(
        tmp_path,
        {"lspci": prints("lspci_ryzen_rx7900xtx.txt"), "vulkaninfo": prints("vulkaninfo_summary_radv.txt")},
    )
    gpu = result["ansible_facts"]["animaflow_gpu"]
    assert (gpu["accelerator"], gpu["vendor"], gpu["total_memory_mib"]) == ("vulkan", "amd", 24560)
    assert gpu["sources"] == ["lspci", "sysfs", "vulkaninfo"]


def test_mixed_nvidia_and_amd_node_lists_every_gpu(tmp_path):
    """Before: rocm-smi was never asked once nvidia-smi answered, so the Radeon was missing."""
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "kfd").touch()
    result = run_module(
        tmp_path,
        {
            "nvidia-smi": nvidia_smi("nvidia_smi_query_rtx4090_mixed.txt", "nvidia_smi_banner_rtx4090.txt"),
            "rocm-smi": prints("rocm_smi_rx7900xtx.json"),
            "lspci": prints("lspci_mixed_rx7900xtx_rtx4090.txt"),
        },
    )
    gpu = result["ansible_facts"]["animaflow_gpu"]
    assert (gpu["accelerator"], gpu["vendor"], gpu["count"], gpu["total_memory_mib"]) == (
        "cuda",
        "nvidia",
        1,
        24564,
    )
    assert (gpu["driver_version"], gpu["cuda_version"]) == ("550.120", "12.4")
    assert [gpu_["compute_capability"] for gpu_ in gpu["gpus"]] == ["8.9"]
    assert [(entry["vendor"], entry["name"], entry["used"]) for entry in gpu["all_gpus"]] == [
        ("nvidia", "NVIDIA GeForce RTX 4090", True),
        ("amd", "Radeon RX 7900 XTX", False),
    ]
    assert gpu["sources"] == ["nvidia-smi", "rocm-smi", "lspci"]
    assert "the AMD GPUs are not used" in gpu["accelerator_reason"]
    assert result["warning_texts"] == []


def test_apu_desktop_with_a_discrete_radeon_uses_the_radeon(tmp_path):
    """Before: the Raphael iGPU counted as a second ROCm GPU (count 2, gfx1036 among the targets)."""
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "kfd").touch()
    result = run_module(
        tmp_path,
        {
            "amd-smi": prints("amd_smi_static_raphael_rx7900xtx.json"),
            "lspci": prints("lspci_raphael_rx7900xtx.txt"),
        },
    )
    gpu = result["ansible_facts"]["animaflow_gpu"]
    assert (gpu["accelerator"], gpu["count"], gpu["total_memory_mib"]) == ("rocm", 1, 24560)
    assert [entry["gfx_target"] for entry in gpu["gpus"]] == ["gfx1100"]
    assert [(entry["gfx_target"], entry["integrated"], entry["used"]) for entry in gpu["all_gpus"]] == [
        ("gfx1100", False, True),
        ("gfx1036", True, False),
    ]
    assert "integrated GPUs left out: 1 x AMD Radeon Graphics" in gpu["accelerator_reason"]


def test_apu_laptop_without_rocm_runs_vulkan_on_its_integrated_gpu(tmp_path):
    result = run_module(
        tmp_path,
        {
            "lspci": prints("lspci_phoenix_7840u.txt"),
            "vulkaninfo": prints("vulkaninfo_summary_phoenix_7840u.txt"),
        },
    )
    gpu = result["ansible_facts"]["animaflow_gpu"]
    assert (gpu["accelerator"], gpu["vendor"], gpu["count"]) == ("vulkan", "amd", 1)
    (apu,) = gpu["all_gpus"]
    assert (apu["name"], apu["integrated"], apu["used"]) == ("Phoenix1", True, True)
    assert "only integrated GPUs are usable" in gpu["accelerator_reason"]
    assert gpu["sources"] == ["lspci", "vulkaninfo"]


def test_cpu_facts_come_from_proc_root(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    shutil.copy(FIXTURES / "cpuinfo_xeon_gold_6326_2s.txt", proc / "cpuinfo")
    shutil.copy(FIXTURES / "meminfo_xeon.txt", proc / "meminfo")
    result = run_module(tmp_path, {}, proc_root=str(proc), _ansible_check_mode=True)
    cpu = result["ansible_facts"]["animaflow_cpu"]
    assert (cpu["sockets"], cpu["physical_cores"], cpu["logical_cpus"], cpu["avx512f"]) == (2, 32, 64, True)
    assert (cpu["memory_total_mib"], cpu["memory_available_mib"]) == (515578, 498131)
    assert sorted(cpu) == sorted(
        [
            "model",
            "architecture",
            "sockets",
            "physical_cores",
            "logical_cpus",
            "avx",
            "avx2",
            "avx512f",
            "memory_total_mib",
            "memory_available_mib",
        ]
    )


def test_unreadable_proc_is_a_warning_not_a_failure(tmp_path):
    result = run_module(tmp_path, {}, proc_root=str(tmp_path / "nowhere"))
    cpu = result["ansible_facts"]["animaflow_cpu"]
    assert (cpu["logical_cpus"], cpu["memory_total_mib"]) == (0, None)
    assert any("could not read" in warning for warning in result["warning_texts"])


@pytest.mark.parametrize("interpreter", ["controller", "oldest-node"])
def test_for_real_on_this_machine_through_ansible(interpreter):
    """As a play runs it: AnsiballZ on this Python, and on the oldest node OS's (Ubuntu 22.04: 3.10)."""
    python = sys.executable
    if interpreter == "oldest-node":
        python = node_python()
        if python is None:
            pytest.skip(
                f"no Python {OLDEST_NODE_PYTHON} on this machine (python{OLDEST_NODE_PYTHON} or pyenv)"
            )
    result = run_through_ansible("gpu_facts", {}, python=python)
    assert not result.get("failed"), json.dumps(result, indent=1)[:3000]
    gpu = result["ansible_facts"]["animaflow_gpu"]
    cpu = result["ansible_facts"]["animaflow_cpu"]
    assert cpu["logical_cpus"] == os.cpu_count()
    assert cpu["memory_total_mib"] > 0
    gpu_tools = any(shutil.which(tool) for tool in GPU_TOOLS) or os.path.exists("/dev/kfd")
    if not gpu_tools and not os.path.exists("/dev/nvidia0"):
        # This workplace and CI have no accelerator: the answer must be the CPU.
        assert (gpu["accelerator"], gpu["vendor"], gpu["count"]) == ("cpu", "none", 0)
    else:
        assert gpu["accelerator"] in ("cuda", "rocm", "vulkan", "cpu")


def test_documented_facts_are_the_returned_facts(tmp_path):
    """RETURN lists every key animaflow_gpu and its GPU entries carry, and nothing else."""
    documented = yaml.safe_load(gpu_facts.RETURN)["ansible_facts"]["contains"]["animaflow_gpu"]["contains"]
    result = run_module(
        tmp_path,
        {
            "amd-smi": prints("amd_smi_static_raphael_rx7900xtx.json"),
            "lspci": prints("lspci_raphael_rx7900xtx.txt"),
        },
    )
    gpu = result["ansible_facts"]["animaflow_gpu"]
    assert set(documented) == set(gpu)
    for entry in (*gpu["gpus"], *gpu["all_gpus"]):
        assert set(documented["all_gpus"]["contains"]) == set(entry)
