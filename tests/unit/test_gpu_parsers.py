"""The GPU parsers against recorded tool outputs (tests/unit/fixtures/gpu/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.animaflow.inference.plugins.module_utils.gpu_parsers import (
    GpuProbe,
    amd_smi_driver_version,
    decide_gpu_facts,
    integration_evidence,
    new_gpu,
    normalize_bus_id,
    nvidia_driver_version,
    parse_amd_smi_static,
    parse_lspci,
    parse_nvidia_smi_banner,
    parse_nvidia_smi_csv,
    parse_rocm_smi_json,
    parse_rocm_version,
    parse_vulkaninfo_devices,
    parse_vulkaninfo_summary,
    pci_id,
    scan_drm,
)

H100_BUS = ["18", "2a", "3a", "5d", "9a", "ab", "ba", "db"]


# --- nvidia-smi ---------------------------------------------------------------------------------


def test_h100_query_gives_eight_complete_gpus(fixture_text):
    gpus = parse_nvidia_smi_csv(fixture_text("nvidia_smi_query_h100x8.txt"))
    assert [gpu["index"] for gpu in gpus] == list(range(8))
    assert gpus[0] == {
        "index": 0,
        "vendor": "nvidia",
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-bc5610b9-79c8-fedd-8899-07539c7f868a",
        "memory_total_mib": 81559,
        "compute_capability": "9.0",
        "gfx_target": None,
        "pci_bus_id": "0000:18:00.0",
        "pci_id": None,
        "integrated": False,
        "integrated_evidence": None,
        "used": False,
        "reason": None,
    }
    assert [gpu["pci_bus_id"] for gpu in gpus] == [f"0000:{bus}:00.0" for bus in H100_BUS]
    assert nvidia_driver_version(fixture_text("nvidia_smi_query_h100x8.txt")) == "550.54.15"


def test_rtx4090_query(fixture_text):
    (gpu,) = parse_nvidia_smi_csv(fixture_text("nvidia_smi_query_rtx4090.txt"))
    assert (gpu["name"], gpu["memory_total_mib"], gpu["compute_capability"]) == (
        "NVIDIA GeForce RTX 4090",
        24564,
        "8.9",
    )
    assert nvidia_driver_version(fixture_text("nvidia_smi_query_rtx4090.txt")) == "550.120"


def test_na_fields_become_none(fixture_text):
    (gpu,) = parse_nvidia_smi_csv(fixture_text("nvidia_smi_query_gb10_na.txt"))
    assert gpu["memory_total_mib"] is None
    assert gpu["compute_capability"] == "12.1"
    # An eight-digit PCI domain keeps its last four digits.
    assert gpu["pci_bus_id"] == "000f:01:00.0"


def test_not_supported_and_blank_fields_become_none():
    line = "0, NVIDIA A100-SXM4-40GB, GPU-1, [Not Supported], , 470.82.01, [N/A], 00000000:07:00.0\n"
    (gpu,) = parse_nvidia_smi_csv(line)
    assert gpu["memory_total_mib"] is None and gpu["compute_capability"] is None
    assert gpu["uuid"] == "GPU-1"


def test_garbage_lines_between_rows_are_skipped(fixture_text):
    rows = fixture_text("nvidia_smi_query_rtx4090.txt")
    text = (
        "Unable to determine the device handle for GPU 0000:02:00.0: Unknown Error\n"
        + rows
        + "No devices were found\n"
        + "x, y, z, 1, 2, 3, 4, 5\n"
    )
    gpus = parse_nvidia_smi_csv(text)
    assert [gpu["name"] for gpu in gpus] == ["NVIDIA GeForce RTX 4090"]


def test_failure_message_parses_to_nothing(fixture_text):
    failed = fixture_text("nvidia_smi_failed.txt")
    assert parse_nvidia_smi_csv(failed) == []
    assert nvidia_driver_version(failed) is None
    assert parse_nvidia_smi_banner(failed) == {"driver_version": None, "cuda_version": None}
    assert parse_nvidia_smi_csv("") == []


def test_fields_follow_the_requested_order():
    fields = ("name", "index", "pci.bus_id")
    (gpu,) = parse_nvidia_smi_csv("Tesla T4, 3, 00000000:AF:00.0\n", fields)
    assert (gpu["index"], gpu["name"], gpu["pci_bus_id"], gpu["uuid"]) == (
        3,
        "Tesla T4",
        "0000:af:00.0",
        None,
    )
    assert nvidia_driver_version("Tesla T4, 3, 00000000:AF:00.0\n", fields) is None


def test_banner_gives_cuda_and_driver_versions(fixture_text):
    assert parse_nvidia_smi_banner(fixture_text("nvidia_smi_banner_h100x8.txt")) == {
        "driver_version": "550.54.15",
        "cuda_version": "12.4",
    }
    assert (
        parse_nvidia_smi_banner(fixture_text("nvidia_smi_banner_rtx4090.txt"))["driver_version"] == "550.120"
    )


# --- rocm-smi / amd-smi -------------------------------------------------------------------------


def test_rocm_smi_mi300x(fixture_text):
    gpus = parse_rocm_smi_json(fixture_text("rocm_smi_mi300x_x2.json"))
    assert gpus == [
        new_gpu(0, "amd", "AMD Instinct MI300X", None, 196608, None, "gfx942", "0000:0c:00.0", "1002:74a1"),
        new_gpu(1, "amd", "AMD Instinct MI300X", None, 196608, None, "gfx942", "0000:22:00.0", "1002:74a1"),
    ]


def test_rocm_smi_older_key_case(fixture_text):
    (gpu,) = parse_rocm_smi_json(fixture_text("rocm_smi_rx7900xtx.json"))
    assert gpu["name"] == "Radeon RX 7900 XTX"
    assert gpu["memory_total_mib"] == 25753026560 // 2**20 == 24560
    assert gpu["gfx_target"] == "gfx1100"
    assert gpu["pci_bus_id"] == "0000:03:00.0"


def test_rocm_smi_any_key_case_and_non_card_blocks():
    text = (
        'WARNING: some log line\n{"system": {"Driver version": "6.7.0"}, '
        '"card1": {"CARD SERIES": "Radeon PRO W7900", "gfx version": "GFX1100", "vram total memory (b)": "48301604864"}}'
    )
    (gpu,) = parse_rocm_smi_json(text)
    assert (gpu["index"], gpu["name"], gpu["gfx_target"], gpu["memory_total_mib"]) == (
        1,
        "Radeon PRO W7900",
        "gfx1100",
        46064,
    )


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", "{}", "null", "ERROR:root:Driver not initialized (amdgpu not found in modules)"],
)
def test_rocm_smi_errors_parse_to_nothing(text):
    assert parse_rocm_smi_json(text) == []


def test_rocm_smi_driver_not_initialized(fixture_text):
    assert parse_rocm_smi_json(fixture_text("rocm_smi_driver_not_initialized.txt")) == []


@pytest.mark.parametrize("name", ["amd_smi_static_list_mi300x.json", "amd_smi_static_gpu_data_mi300x.json"])
def test_amd_smi_both_shapes(fixture_text, name):
    gpus = parse_amd_smi_static(fixture_text(name))
    assert gpus == [
        new_gpu(0, "amd", "AMD Instinct MI300X", None, 196592, None, "gfx942", "0000:0c:00.0", "1002:74a1"),
        new_gpu(1, "amd", "AMD Instinct MI300X", None, 196592, None, "gfx942", "0000:22:00.0", "1002:74a1"),
    ]


def test_amd_smi_driver_version_per_release(fixture_text):
    assert amd_smi_driver_version(fixture_text("amd_smi_static_list_mi300x.json")) == "6.7.0"
    assert amd_smi_driver_version(fixture_text("amd_smi_static_gpu_data_mi300x.json")) == "6.12.12"


def test_amd_smi_units_and_missing_parts():
    text = (
        '[{"gpu": 0, "asic": {"market_name": "N/A", "target_graphics_version": "gfx90a"},'
        ' "vram": {"size": {"value": 64, "unit": "GB"}}},'
        ' {"gpu": 1, "asic": null, "vram": {"size": "32768 MB"}}, "junk"]'
    )
    first, second = parse_amd_smi_static(text)
    assert (first["name"], first["gfx_target"], first["memory_total_mib"]) == (None, "gfx90a", 65536)
    assert (second["index"], second["name"], second["memory_total_mib"]) == (1, None, 32768)
    assert parse_amd_smi_static('{"gpu_data": "no"}') == []
    assert parse_amd_smi_static("amd-smi: error") == []


def test_rocm_version():
    assert parse_rocm_version("6.1.2-119\n") == "6.1.2"
    assert parse_rocm_version("7.0.0\n") == "7.0.0"
    assert parse_rocm_version("") is None


# --- lspci / sysfs / vulkaninfo ---------------------------------------------------------------


def test_lspci_dgx_skips_nvswitch_and_bmc(fixture_text):
    gpus = parse_lspci(fixture_text("lspci_dgx_h100.txt"))
    assert len(gpus) == 8
    assert {gpu["vendor"] for gpu in gpus} == {"nvidia"}
    assert {gpu["name"] for gpu in gpus} == {"H100 SXM5 80GB"}
    assert [gpu["pci_bus_id"] for gpu in gpus] == [f"0000:{bus}:00.0" for bus in H100_BUS]
    assert [gpu["index"] for gpu in gpus] == list(range(8))


def test_lspci_mi300x_processing_accelerators(fixture_text):
    gpus = parse_lspci(fixture_text("lspci_mi300x.txt"))
    assert [(gpu["vendor"], gpu["name"], gpu["pci_bus_id"]) for gpu in gpus] == [
        ("amd", "Instinct MI300X", "0000:0c:00.0"),
        ("amd", "Instinct MI300X", "0000:22:00.0"),
    ]


def test_lspci_cpu_only_server_has_no_gpu(fixture_text):
    assert parse_lspci(fixture_text("lspci_cpu_only_matrox.txt")) == []
    assert parse_lspci("") == []


def test_lspci_radeon_without_its_audio_function(fixture_text):
    (gpu,) = parse_lspci(fixture_text("lspci_ryzen_rx7900xtx.txt"))
    assert (gpu["vendor"], gpu["name"], gpu["pci_bus_id"]) == (
        "amd",
        "Radeon RX 7900 XT/7900 XTX/7900M",
        "0000:03:00.0",
    )


def test_lspci_with_domain():
    line = "0001:c1:00.0 Display controller [0380]: Advanced Micro Devices, Inc. [AMD/ATI] Device [1002:7460]"
    (gpu,) = parse_lspci(line)
    assert gpu["pci_bus_id"] == "0001:c1:00.0"


def _card(root: Path, name: str, bus: str, vendor: str, vram: str | None = None) -> None:
    pci = root / "devices" / "pci0000:00" / bus
    pci.mkdir(parents=True)
    (pci / "vendor").write_text(vendor + "\n")
    if vram is not None:
        (pci / "mem_info_vram_total").write_text(vram + "\n")
    card = root / "class" / "drm" / name
    card.mkdir(parents=True)
    (card / "device").symlink_to(pci)


def test_scan_drm_reads_vendor_memory_and_address(tmp_path):
    _card(tmp_path, "card0", "0000:04:00.0", "0x1a03")  # ASPEED BMC: not a GPU
    _card(tmp_path, "card1", "0000:03:00.0", "0x1002", "25753026560")
    (tmp_path / "class" / "drm" / "card1-DP-1").mkdir()  # a connector, not a device
    (tmp_path / "class" / "drm" / "renderD128").mkdir()
    assert scan_drm(str(tmp_path)) == [new_gpu(0, "amd", memory_total_mib=24560, pci_bus_id="0000:03:00.0")]


def test_scan_drm_without_drm(tmp_path):
    assert scan_drm(str(tmp_path)) == []


def test_vulkaninfo_drops_llvmpipe(fixture_text):
    assert parse_vulkaninfo_summary(fixture_text("vulkaninfo_summary_radv.txt")) == [
        "AMD Radeon RX 7900 XTX (RADV GFX1100)"
    ]
    assert parse_vulkaninfo_summary(fixture_text("vulkaninfo_summary_llvmpipe_only.txt")) == []
    assert parse_vulkaninfo_summary("") == []


def test_normalize_bus_id():
    assert normalize_bus_id("00000000:AB:00.0") == "0000:ab:00.0"
    assert normalize_bus_id("0000:0C:00.0") == "0000:0c:00.0"
    assert normalize_bus_id("c1:00.0") == "0000:c1:00.0"
    assert normalize_bus_id("[N/A]") is None
    assert normalize_bus_id("card0") is None


# --- decision -----------------------------------------------------------------------------------


def test_working_nvidia_is_cuda(fixture_text):
    probe = GpuProbe(
        nvidia_gpus=parse_nvidia_smi_csv(fixture_text("nvidia_smi_query_h100x8.txt")),
        nvidia_driver_version="550.54.15",
        cuda_version="12.4",
        pci_gpus=parse_lspci(fixture_text("lspci_dgx_h100.txt")),
        sources=["nvidia-smi", "lspci"],
    )
    facts = decide_gpu_facts(probe)
    assert {key: facts[key] for key in facts if key not in ("gpus", "all_gpus")} == {
        "accelerator": "cuda",
        "accelerator_reason": "cuda: nvidia-smi answered for 8 x NVIDIA H100 80GB HBM3",
        "vendor": "nvidia",
        "count": 8,
        "total_memory_mib": 8 * 81559,
        "driver_version": "550.54.15",
        "cuda_version": "12.4",
        "rocm_version": None,
        "sources": ["nvidia-smi", "lspci"],
    }
    assert facts["gpus"][7]["uuid"] == "GPU-c6e8a0b2-d4f6-1a3c-5e7b-9d1f3a5c7e20"
    assert probe.warnings == []


def test_gpu_missing_from_nvidia_smi_is_warned(fixture_text):
    probe = GpuProbe(
        nvidia_gpus=parse_nvidia_smi_csv(fixture_text("nvidia_smi_query_h100x8.txt"))[:7],
        pci_gpus=parse_lspci(fixture_text("lspci_dgx_h100.txt")),
    )
    facts = decide_gpu_facts(probe)
    assert facts["count"] == 7
    # The eighth is still reported, with the reason it is not used.
    assert [gpu["used"] for gpu in facts["all_gpus"]] == [True] * 7 + [False]
    assert facts["all_gpus"][7]["reason"] == "not used: listed by lspci/sysfs but not by nvidia-smi"
    assert facts["all_gpus"][7]["pci_bus_id"] == "0000:db:00.0"
    assert probe.warnings == [
        "lspci lists 8 NVIDIA GPUs but nvidia-smi reports 7: some may have fallen off the bus"
    ]


def test_broken_nvidia_driver_is_not_cuda(fixture_text):
    probe = GpuProbe(
        nvidia_error="nvidia-smi exited 9: NVIDIA-SMI has failed because it couldn't communicate",
        pci_gpus=parse_lspci(fixture_text("lspci_dgx_h100.txt")),
    )
    facts = decide_gpu_facts(probe)
    assert (facts["accelerator"], facts["vendor"], facts["count"]) == ("cpu", "nvidia", 8)
    assert facts["cuda_version"] is None and facts["driver_version"] is None
    assert facts["accelerator_reason"] == (
        "cpu: neither Vulkan nor a vendor stack can drive 8 x H100 SXM5 80GB "
        "(no CUDA: nvidia-smi exited 9: NVIDIA-SMI has failed because it couldn't communicate)"
    )
    assert not any(gpu["used"] for gpu in facts["all_gpus"])
    assert len(probe.warnings) == 1
    assert "not usable for CUDA" in probe.warnings[0] and "exited 9" in probe.warnings[0]


def test_broken_nvidia_with_a_real_vulkan_device_is_vulkan(fixture_text):
    probe = GpuProbe(
        nvidia_error="nvidia-smi exited 9",
        pci_gpus=parse_lspci(fixture_text("lspci_dgx_h100.txt")),
        vulkan_devices=["NVK GH100"],
    )
    assert decide_gpu_facts(probe)["accelerator"] == "vulkan"


def test_amd_with_kfd_is_rocm(fixture_text):
    probe = GpuProbe(
        amd_gpus=parse_amd_smi_static(fixture_text("amd_smi_static_gpu_data_mi300x.json")),
        amd_driver_version="6.12.12",
        kfd_present=True,
        rocm_version="6.1.2",
        sources=["amd-smi"],
    )
    facts = decide_gpu_facts(probe)
    assert (facts["accelerator"], facts["vendor"], facts["count"], facts["total_memory_mib"]) == (
        "rocm",
        "amd",
        2,
        2 * 196592,
    )
    assert (facts["driver_version"], facts["rocm_version"], facts["cuda_version"]) == (
        "6.12.12",
        "6.1.2",
        None,
    )
    assert probe.warnings == []


def test_amd_without_kfd_is_vulkan_and_warned(fixture_text):
    probe = GpuProbe(amd_gpus=parse_rocm_smi_json(fixture_text("rocm_smi_rx7900xtx.json")), kfd_present=False)
    assert decide_gpu_facts(probe)["accelerator"] == "vulkan"
    assert "/dev/kfd is missing" in probe.warnings[0]


def test_amd_without_kfd_and_only_llvmpipe_is_cpu(fixture_text):
    probe = GpuProbe(
        amd_gpus=parse_rocm_smi_json(fixture_text("rocm_smi_rx7900xtx.json")),
        vulkan_devices=parse_vulkaninfo_summary(fixture_text("vulkaninfo_summary_llvmpipe_only.txt")),
    )
    assert decide_gpu_facts(probe)["accelerator"] == "cpu"


def test_amd_on_pci_only_takes_memory_from_sysfs(fixture_text):
    probe = GpuProbe(
        amd_error="rocm-smi printed no usable output",
        pci_gpus=parse_lspci(fixture_text("lspci_ryzen_rx7900xtx.txt")),
        drm_gpus=[new_gpu(0, "amd", memory_total_mib=24560, pci_bus_id="0000:03:00.0")],
        vulkan_devices=parse_vulkaninfo_summary(fixture_text("vulkaninfo_summary_radv.txt")),
    )
    facts = decide_gpu_facts(probe)
    assert (facts["accelerator"], facts["vendor"], facts["total_memory_mib"]) == ("vulkan", "amd", 24560)
    assert facts["gpus"][0]["name"] == "Radeon RX 7900 XT/7900 XTX/7900M"
    assert probe.warnings == [
        "AMD GPU visible but not usable for ROCm (rocm-smi printed no usable output); using vulkan"
    ]


def test_sysfs_alone_is_enough_to_see_a_gpu():
    probe = GpuProbe(drm_gpus=[new_gpu(0, "amd", memory_total_mib=24560, pci_bus_id="0000:03:00.0")])
    facts = decide_gpu_facts(probe)
    assert (facts["accelerator"], facts["count"]) == ("vulkan", 1)


def test_cpu_only_server(fixture_text):
    probe = GpuProbe(pci_gpus=parse_lspci(fixture_text("lspci_cpu_only_matrox.txt")), sources=["lspci"])
    assert decide_gpu_facts(probe) == {
        "accelerator": "cpu",
        "accelerator_reason": "cpu: no NVIDIA or AMD GPU found",
        "vendor": "none",
        "count": 0,
        "total_memory_mib": 0,
        "driver_version": None,
        "cuda_version": None,
        "rocm_version": None,
        "sources": ["lspci"],
        "gpus": [],
        "all_gpus": [],
    }
    assert probe.warnings == []


# --- every GPU, integrated GPUs and mixed vendors (issue 14) -----------------------------------


def test_mixed_nvidia_and_amd_node_reports_both_and_uses_cuda(fixture_text):
    """Before: the AMD card was dropped as soon as nvidia-smi answered."""
    probe = GpuProbe(
        nvidia_gpus=parse_nvidia_smi_csv(fixture_text("nvidia_smi_query_rtx4090_mixed.txt")),
        nvidia_driver_version="550.120",
        cuda_version="12.4",
        amd_gpus=parse_rocm_smi_json(fixture_text("rocm_smi_rx7900xtx.json")),
        amd_tool="rocm-smi",
        kfd_present=True,
        pci_gpus=parse_lspci(fixture_text("lspci_mixed_rx7900xtx_rtx4090.txt")),
    )
    facts = decide_gpu_facts(probe)
    # The contract the roles read is unchanged: the CUDA GPUs only.
    assert (facts["accelerator"], facts["vendor"], facts["count"], facts["total_memory_mib"]) == (
        "cuda",
        "nvidia",
        1,
        24564,
    )
    assert [gpu["name"] for gpu in facts["gpus"]] == ["NVIDIA GeForce RTX 4090"]
    assert [(gpu["vendor"], gpu["name"], gpu["pci_bus_id"], gpu["used"]) for gpu in facts["all_gpus"]] == [
        ("nvidia", "NVIDIA GeForce RTX 4090", "0000:0c:00.0", True),
        ("amd", "Radeon RX 7900 XTX", "0000:03:00.0", False),
    ]
    nvidia, amd = facts["all_gpus"]
    assert (nvidia["pci_id"], amd["pci_id"], amd["gfx_target"]) == ("10de:2684", "1002:744c", "gfx1100")
    assert not nvidia["integrated"] and not amd["integrated"]
    assert amd["reason"].startswith("not used: CUDA serves the backends")
    assert facts["accelerator_reason"].startswith("cuda: nvidia-smi answered for 1 x NVIDIA GeForce RTX 4090")
    assert "the AMD GPUs are not used" in facts["accelerator_reason"]
    assert probe.warnings == []


def test_mixed_node_whose_nvidia_driver_is_broken_uses_rocm_and_says_why(fixture_text):
    probe = GpuProbe(
        nvidia_error="nvidia-smi exited 9: NVIDIA-SMI has failed",
        amd_gpus=parse_rocm_smi_json(fixture_text("rocm_smi_rx7900xtx.json")),
        amd_tool="rocm-smi",
        kfd_present=True,
        pci_gpus=parse_lspci(fixture_text("lspci_mixed_rx7900xtx_rtx4090.txt")),
    )
    facts = decide_gpu_facts(probe)
    assert (facts["accelerator"], facts["vendor"], facts["count"]) == ("rocm", "amd", 1)
    assert [(gpu["vendor"], gpu["used"]) for gpu in facts["all_gpus"]] == [("amd", True), ("nvidia", False)]
    assert facts["all_gpus"][1]["reason"] == "not used: nvidia-smi exited 9: NVIDIA-SMI has failed"
    assert probe.warnings == [
        "NVIDIA GPU visible but not usable for CUDA (nvidia-smi exited 9: NVIDIA-SMI has failed); using rocm"
    ]


def test_apu_plus_discrete_radeon_uses_only_the_discrete_one(fixture_text):
    """Before: the Raphael iGPU (512 MiB carve-out, gfx1036) counted as a second ROCm GPU."""
    text = fixture_text("amd_smi_static_raphael_rx7900xtx.json")
    probe = GpuProbe(
        amd_gpus=parse_amd_smi_static(text),
        amd_tool="amd-smi",
        amd_driver_version=amd_smi_driver_version(text),
        kfd_present=True,
        pci_gpus=parse_lspci(fixture_text("lspci_raphael_rx7900xtx.txt")),
    )
    facts = decide_gpu_facts(probe)
    assert (facts["accelerator"], facts["vendor"], facts["count"], facts["total_memory_mib"]) == (
        "rocm",
        "amd",
        1,
        24560,
    )
    assert [gpu["gfx_target"] for gpu in facts["gpus"]] == ["gfx1100"]
    discrete, apu = facts["all_gpus"]
    assert (discrete["used"], discrete["integrated"], discrete["reason"]) == (True, False, "used for rocm")
    assert (apu["name"], apu["pci_id"], apu["memory_total_mib"]) == ("AMD Radeon Graphics", "1002:164e", 512)
    assert (apu["used"], apu["integrated"], apu["integrated_evidence"]) == (
        False,
        True,
        "gfx1036 is an APU target",
    )
    assert apu["reason"] == "not used: integrated GPU (gfx1036 is an APU target); discrete GPUs are used"
    assert facts["accelerator_reason"] == (
        "rocm: amd-smi listed 1 x AMD Radeon RX 7900 XTX and /dev/kfd exists; "
        "integrated GPUs left out: 1 x AMD Radeon Graphics"
    )
    assert facts["driver_version"] == "6.10.5"
    assert probe.warnings == []


def test_apu_beside_an_nvidia_card_seen_only_on_pci_is_integrated(fixture_text):
    lspci = fixture_text("lspci_raphael_rx7900xtx.txt").replace(
        "03:00.0 VGA compatible controller [0300]: Advanced Micro Devices, Inc. [AMD/ATI] Navi 31 "
        "[Radeon RX 7900 XT/7900 XTX/7900M] [1002:744c] (rev c8)",
        "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation AD102 [GeForce RTX 4090] [10de:2684] (rev a1)",
    )
    probe = GpuProbe(
        nvidia_gpus=parse_nvidia_smi_csv(fixture_text("nvidia_smi_query_rtx4090.txt")),
        pci_gpus=parse_lspci(lspci),
    )
    facts = decide_gpu_facts(probe)
    assert (facts["accelerator"], facts["count"]) == ("cuda", 1)
    apu = facts["all_gpus"][1]
    assert (apu["vendor"], apu["name"], apu["integrated"], apu["used"]) == ("amd", "Raphael", True, False)
    assert apu["integrated_evidence"] == "PCI device 1002:164e is Raphael APU graphics"
    assert "integrated GPUs left out: 1 x Raphael" in facts["accelerator_reason"]


def test_apu_laptop_with_rocm_uses_its_integrated_gpu(fixture_text):
    probe = GpuProbe(
        amd_gpus=parse_rocm_smi_json(fixture_text("rocm_smi_phoenix_7840u.json")),
        amd_tool="rocm-smi",
        kfd_present=True,
        pci_gpus=parse_lspci(fixture_text("lspci_phoenix_7840u.txt")),
    )
    facts = decide_gpu_facts(probe)
    assert (facts["accelerator"], facts["count"], facts["total_memory_mib"]) == ("rocm", 1, 512)
    (apu,) = facts["all_gpus"]
    assert (apu["integrated"], apu["used"], apu["gfx_target"], apu["pci_bus_id"]) == (
        True,
        True,
        "gfx1103",
        "0000:c1:00.0",
    )
    assert apu["reason"] == "used for rocm (integrated: no discrete GPU is usable)"
    assert facts["accelerator_reason"].endswith(
        "only integrated GPUs are usable (their memory is shared with the CPU)"
    )


def test_apu_laptop_without_rocm_is_vulkan_on_the_integrated_gpu(fixture_text):
    vulkan = fixture_text("vulkaninfo_summary_phoenix_7840u.txt")
    probe = GpuProbe(
        pci_gpus=parse_lspci(fixture_text("lspci_phoenix_7840u.txt")),
        vulkan_devices=parse_vulkaninfo_summary(vulkan),
        vulkan_hardware=parse_vulkaninfo_devices(vulkan),
    )
    facts = decide_gpu_facts(probe)
    assert (facts["accelerator"], facts["vendor"], facts["count"]) == ("vulkan", "amd", 1)
    (apu,) = facts["gpus"]
    assert (apu["name"], apu["integrated"], apu["used"]) == ("Phoenix1", True, True)


def test_vulkaninfo_device_type_marks_an_apu_no_table_knows(fixture_text):
    vulkan = fixture_text("vulkaninfo_summary_phoenix_7840u.txt").replace("0x15bf", "0x17f0")
    gpu = new_gpu(0, "amd", "Some future APU", pci_bus_id="0000:c1:00.0", pci_id="1002:17f0")
    evidence = integration_evidence(gpu, parse_vulkaninfo_devices(vulkan))
    assert evidence == "vulkaninfo reports an integrated GPU"
    assert (
        integration_evidence(gpu, parse_vulkaninfo_devices(fixture_text("vulkaninfo_summary_radv.txt")))
        is None
    )


def test_vulkaninfo_devices_have_type_and_pci_id(fixture_text):
    assert parse_vulkaninfo_devices(fixture_text("vulkaninfo_summary_phoenix_7840u.txt")) == [
        {"name": "AMD Radeon 780M (RADV GFX1103_R1)", "type": "INTEGRATED_GPU", "pci_id": "1002:15bf"}
    ]
    assert parse_vulkaninfo_devices(fixture_text("vulkaninfo_summary_radv.txt"))[0]["type"] == "DISCRETE_GPU"


def test_strix_halo_alone_is_used_whatever_its_carve_out():
    """Strix Halo can carve 96 GiB out of RAM: size says nothing, the gfx target does."""
    halo = new_gpu(0, "amd", "AMD Radeon 8060S", None, 98304, None, "gfx1151", "0000:c5:00.0", "1002:1586")
    facts = decide_gpu_facts(GpuProbe(amd_gpus=[halo], amd_tool="amd-smi", kfd_present=True))
    assert (facts["accelerator"], facts["count"], facts["total_memory_mib"]) == ("rocm", 1, 98304)
    assert facts["gpus"][0]["integrated"] is True


def test_mi300x_is_discrete_and_mi300a_integrated_by_device_id(fixture_text):
    (mi300x, _) = parse_rocm_smi_json(fixture_text("rocm_smi_mi300x_x2.json"))
    assert integration_evidence(mi300x, []) is None
    mi300a = {**mi300x, "pci_id": "1002:74a0"}
    assert integration_evidence(mi300a, []) == "PCI device 1002:74a0 is Instinct MI300A APU graphics"


def test_pci_ids_from_every_source(fixture_text):
    assert [gpu["pci_id"] for gpu in parse_lspci(fixture_text("lspci_dgx_h100.txt"))] == ["10de:2330"] * 8
    assert parse_rocm_smi_json(fixture_text("rocm_smi_rx7900xtx.json"))[0]["pci_id"] == "1002:744c"
    assert [
        gpu["pci_id"] for gpu in parse_amd_smi_static(fixture_text("amd_smi_static_raphael_rx7900xtx.json"))
    ] == [
        "1002:744c",
        "1002:164e",
    ]
    assert pci_id("0x1002", "junk") is None


def test_scan_drm_reads_the_device_id(tmp_path):
    _card(tmp_path, "card0", "0000:c1:00.0", "0x1002", "536870912")
    (tmp_path / "devices" / "pci0000:00" / "0000:c1:00.0" / "device").write_text("0x15bf\n")
    (gpu,) = scan_drm(str(tmp_path))
    assert (gpu["pci_id"], gpu["memory_total_mib"]) == ("1002:15bf", 512)
    facts = decide_gpu_facts(GpuProbe(drm_gpus=[gpu]))
    assert (facts["accelerator"], facts["gpus"][0]["integrated"]) == ("vulkan", True)
