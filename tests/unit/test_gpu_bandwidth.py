"""GPU memory bandwidth for the decode bound: the datasheet table by the names the tools print, the
aggregate over the GPUs a server uses, and the parsing of the optional measured device probe."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.animaflow.inference.plugins.module_utils.gpu_bandwidth import (
    DEVICE_PROBE_SCRIPT,
    GPU_BANDWIDTH_TABLE,
    default_gpu_split,
    gpu_datasheet_bandwidth,
    lookup_gpu_bandwidth,
    measure_gpu_bandwidth,
    parse_device_probe,
)
from ansible_collections.animaflow.inference.plugins.module_utils.gpu_parsers import (
    parse_amd_smi_static,
    parse_lspci,
    parse_nvidia_smi_csv,
    parse_rocm_smi_json,
    parse_vulkaninfo_summary,
)
from ansible_collections.animaflow.inference.plugins.module_utils.llm_bench_host import memory_bandwidth

FIXTURES = Path(__file__).parent / "fixtures" / "gpu"

# Names as nvidia-smi, rocm-smi, amd-smi, lspci and vulkaninfo print them, with the expected GB/s.
NAMES = {
    "NVIDIA B200": 8000.0,
    "NVIDIA H200": 4800.0,
    "NVIDIA H200 NVL": 4800.0,
    "NVIDIA GH200 144G HBM3e": 4900.0,
    "NVIDIA GH200 480GB": 4000.0,
    "NVIDIA H100 NVL": 3900.0,
    "NVIDIA H100 PCIe": 2000.0,
    "NVIDIA H100 80GB HBM3": 3350.0,
    "H100 SXM5 80GB": 3350.0,
    "NVIDIA H800 PCIe": 2000.0,
    "NVIDIA H800": 3350.0,
    "NVIDIA H20": 4000.0,
    "NVIDIA A100 80GB PCIe": 1935.0,
    "NVIDIA A100-PCIE-80GB": 1935.0,
    "NVIDIA A100-SXM4-80GB": 2039.0,
    "NVIDIA A100-SXM4-40GB": 1555.0,
    "NVIDIA A100-PCIE-40GB": 1555.0,
    "NVIDIA A30": 933.0,
    "NVIDIA A40": 696.0,
    "NVIDIA A10": 600.0,
    "NVIDIA A10G": 600.0,
    "NVIDIA A16": 200.0,
    "NVIDIA A2": 200.0,
    "NVIDIA L40S": 864.0,
    "NVIDIA L40": 864.0,
    "NVIDIA L4": 300.0,
    "Tesla V100S-PCIE-32GB": 1134.0,
    "Tesla V100-SXM2-16GB": 900.0,
    "Tesla V100-PCIE-32GB": 900.0,
    "Tesla T4": 320.0,
    "NVIDIA GB10": 273.0,
    "NVIDIA RTX PRO 6000 Blackwell Server Edition": 1792.0,
    "NVIDIA RTX 6000 Ada Generation": 960.0,
    "NVIDIA RTX 5000 Ada Generation": 576.0,
    "NVIDIA RTX 4000 Ada Generation": 360.0,
    "NVIDIA RTX A6000": 768.0,
    "NVIDIA RTX A5000": 768.0,
    "NVIDIA RTX A4000": 448.0,
    "Quadro RTX 8000": 672.0,
    "NVIDIA GeForce RTX 5090": 1792.0,
    "NVIDIA GeForce RTX 5080": 960.0,
    "NVIDIA GeForce RTX 4090": 1008.0,
    "NVIDIA GeForce RTX 4090 D": 1008.0,
    "NVIDIA GeForce RTX 4080 SUPER": 736.0,
    "NVIDIA GeForce RTX 4080": 716.8,
    "NVIDIA GeForce RTX 3090 Ti": 1008.0,
    "NVIDIA GeForce RTX 3090": 936.0,
    "NVIDIA GeForce RTX 3080 Ti": 912.0,
    "AMD Instinct MI355X": 8000.0,
    "AMD Instinct MI325X": 6000.0,
    "AMD Instinct MI300X": 5300.0,
    "AMD Instinct MI300A": 5300.0,
    "AMD Instinct MI250X": 1638.4,
    "AMD Instinct MI250": 1638.4,
    "AMD Instinct MI210": 1638.4,
    "AMD Instinct MI100": 1228.8,
    "AMD Radeon PRO W7900": 864.0,
    "AMD Radeon PRO W7800": 576.0,
    "AMD Radeon PRO W6800": 512.0,
    "Radeon RX 7900 XTX": 960.0,
    "AMD Radeon RX 7900 XTX (RADV GFX1100)": 960.0,
    "AMD Radeon RX 7900 XT": 800.0,
    "AMD Radeon RX 7900 GRE": 576.0,
    "AMD Radeon RX 9070 XT": 640.0,
    "AMD Radeon RX 6900 XT": 512.0,
}


@pytest.mark.parametrize(("name", "gbps"), NAMES.items())
def test_the_names_the_tools_print_find_their_datasheet_figure(name: str, gbps: float) -> None:
    entry = lookup_gpu_bandwidth(name)
    assert entry is not None and entry["gbps"] == gbps, entry


def test_every_table_entry_is_reachable_and_names_its_source() -> None:
    """A specific entry listed after a general one that matches it first would never be used."""
    hit = {lookup_gpu_bandwidth(name)["model"] for name in NAMES}  # type: ignore[index]
    for pattern, gbps, model, source in GPU_BANDWIDTH_TABLE:
        re.compile(pattern)
        assert gbps > 0 and source and model in hit, model


@pytest.mark.parametrize(
    "name",
    [
        None,
        "",
        "NVIDIA GeForce GTX 1080",
        "AMD Radeon 780M",
        "AMD Radeon Graphics",
        "Phoenix1",
        # lspci names a family: a guess between 800 and 960 GB/s would be no datasheet figure.
        "Radeon RX 7900 XT/7900 XTX/7900M",
        "NVIDIA T400",
        "NVIDIA H2000",
    ],
)
def test_unknown_or_ambiguous_names_get_no_figure(name: str | None) -> None:
    assert lookup_gpu_bandwidth(name) is None


def fixture_names() -> dict[str, list[str | None]]:
    read = lambda name: (FIXTURES / name).read_text()  # noqa: E731
    return {
        "nvidia_smi_query_h100x8.txt": [
            gpu["name"] for gpu in parse_nvidia_smi_csv(read("nvidia_smi_query_h100x8.txt"))
        ],
        "nvidia_smi_query_rtx4090.txt": [
            gpu["name"] for gpu in parse_nvidia_smi_csv(read("nvidia_smi_query_rtx4090.txt"))
        ],
        "nvidia_smi_query_gb10_na.txt": [
            gpu["name"] for gpu in parse_nvidia_smi_csv(read("nvidia_smi_query_gb10_na.txt"))
        ],
        "rocm_smi_mi300x_x2.json": [
            gpu["name"] for gpu in parse_rocm_smi_json(read("rocm_smi_mi300x_x2.json"))
        ],
        "rocm_smi_rx7900xtx.json": [
            gpu["name"] for gpu in parse_rocm_smi_json(read("rocm_smi_rx7900xtx.json"))
        ],
        "amd_smi_static_list_mi300x.json": [
            gpu["name"] for gpu in parse_amd_smi_static(read("amd_smi_static_list_mi300x.json"))
        ],
        "lspci_dgx_h100.txt": [gpu["name"] for gpu in parse_lspci(read("lspci_dgx_h100.txt"))],
        "vulkaninfo_summary_radv.txt": list(parse_vulkaninfo_summary(read("vulkaninfo_summary_radv.txt"))),
    }


def test_the_fixtures_gpus_are_in_the_table() -> None:
    expected = {
        "nvidia_smi_query_h100x8.txt": 3350.0,
        "nvidia_smi_query_rtx4090.txt": 1008.0,
        "nvidia_smi_query_gb10_na.txt": 273.0,
        "rocm_smi_mi300x_x2.json": 5300.0,
        "rocm_smi_rx7900xtx.json": 960.0,
        "amd_smi_static_list_mi300x.json": 5300.0,
        "lspci_dgx_h100.txt": 3350.0,
        "vulkaninfo_summary_radv.txt": 960.0,
    }
    for fixture, names in fixture_names().items():
        assert names, fixture
        assert {lookup_gpu_bandwidth(name)["gbps"] for name in names} == {expected[fixture]}, fixture  # type: ignore[index]


def facts(*names: str, accelerator: str = "cuda") -> dict[str, Any]:
    gpus = [{"index": i, "name": name, "used": accelerator != "cpu"} for i, name in enumerate(names)]
    return {"accelerator": accelerator, "count": len(gpus), "gpus": gpus}


def test_tensor_parallelism_multiplies_layer_split_does_not() -> None:
    h100x8 = facts(*["NVIDIA H100 80GB HBM3"] * 8)
    tp4 = gpu_datasheet_bandwidth(h100x8, gpus_used=4, split="tensor")
    assert tp4["gbps"] == 13400.0 and tp4["source"] == "gpu_datasheet" and tp4["gpus_used"] == 4
    assert "H100 SXM 3350 GB/s (NVIDIA H100 datasheet" in tp4["method"] and "4 x the slowest" in tp4["method"]
    assert gpu_datasheet_bandwidth(h100x8)["gbps"] == 26800.0  # default: every GPU in the facts
    layer = gpu_datasheet_bandwidth(h100x8, split="layer")
    assert layer["gbps"] == 3350.0 and "one after another" in layer["method"]
    mixed = facts("NVIDIA GeForce RTX 4090", "AMD Radeon RX 7900 XTX")
    assert gpu_datasheet_bandwidth(mixed, split="tensor")["gbps"] == 1920.0  # the slowest sets the pace
    assert gpu_datasheet_bandwidth(mixed, split="layer")["gbps"] == 1008.0
    assert default_gpu_split("llamacpp") == "layer" and default_gpu_split("ollama") == "layer"
    assert default_gpu_split("vllm") == "tensor" and default_gpu_split(None) == "tensor"


def test_no_figure_rather_than_a_wrong_one() -> None:
    unknown = gpu_datasheet_bandwidth(facts("NVIDIA GeForce GTX 1080"))
    assert unknown["gbps"] is None and unknown["source"] is None
    assert "no datasheet figure for NVIDIA GeForce GTX 1080: pass memory_bandwidth_gbps" in unknown["method"]
    assert "accelerator cpu" in gpu_datasheet_bandwidth(facts("NVIDIA L4", accelerator="cpu"))["method"]
    assert "no GPU facts" in gpu_datasheet_bandwidth(None)["method"]
    too_many = gpu_datasheet_bandwidth(facts("NVIDIA L4"), gpus_used=2)
    assert too_many["gbps"] is None and "2 GPUs used but the facts list 1" in too_many["method"]


PROBE_LINE = {
    "device": "NVIDIA H100 80GB HBM3",
    "torch": "2.9.0+cu130",
    "hip": None,
    "buffer_mib": 1024,
    "repeats": 5,
    "copy_gbps": 2871.4,
    "read_gbps": 3012.9,
}


def test_the_device_probe_output_is_parsed() -> None:
    noisy = "UserWarning: TF32 is off\nsomething {not json\n" + json.dumps(PROBE_LINE) + "\n"
    assert parse_device_probe(noisy) == PROBE_LINE
    assert parse_device_probe('{"error": "torch sees no GPU"}') == {"error": "torch sees no GPU"}
    assert "no positive" in parse_device_probe('{"copy_gbps": 0, "read_gbps": 10}')["error"]
    assert parse_device_probe("")["error"] == "the probe printed no result"
    assert "Traceback" in parse_device_probe("Traceback (most recent call last): boom")["error"]
    compile(DEVICE_PROBE_SCRIPT, "<probe>", "exec")  # at least valid Python on this interpreter


def fake_python(tmp_path: Path, body: str) -> str:
    """An executable standing in for the backend virtualenv's python (there is no GPU here)."""
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_measured_device_copy_replaces_the_datasheet_when_it_works(tmp_path: Path) -> None:
    python = fake_python(tmp_path, f"echo 'loading torch'\necho '{json.dumps(PROBE_LINE)}'\n")
    measured = measure_gpu_bandwidth(python, gpus_used=2, split="tensor")
    assert measured["gbps"] == 6025.8 and measured["source"] == "gpu_measured"
    assert measured["per_gpu_gbps"] == [3012.9, 3012.9]
    assert "measured on GPU 0 (NVIDIA H100 80GB HBM3, torch 2.9.0+cu130)" in measured["method"]
    through = memory_bandwidth(
        "gpu",
        gpu_facts=facts("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"),
        gpu_python=python,
        backend="vllm",
    )
    assert through["source"] == "gpu_measured" and through["datasheet_gbps"] == 6700.0


def test_a_failed_probe_falls_back_to_the_datasheet_and_says_why(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "echo 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n")
    failed = measure_gpu_bandwidth(python, gpus_used=1)
    assert failed["gbps"] is None and "exited 1: ModuleNotFoundError" in failed["method"]
    h100 = facts("NVIDIA H100 80GB HBM3")
    fallback = memory_bandwidth("gpu", gpu_facts=h100, gpu_python=python, backend="vllm")
    assert fallback["source"] == "gpu_datasheet" and fallback["gbps"] == 3350.0
    assert "GPU probe failed" in fallback["method"]
    missing = memory_bandwidth("gpu", gpu_facts=h100, gpu_python=str(tmp_path / "nope"), backend="vllm")
    assert missing["gbps"] == 3350.0 and "does not exist" in missing["method"]
