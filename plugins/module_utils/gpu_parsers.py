# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Parsers for the GPU tools gpu_facts runs, and the decision of what a backend can use.

Every parser takes the raw text a tool printed and returns plain dicts. None of them raises on
odd input: a tool that printed an error, half a table or nothing gives an empty answer, because
gpu_facts must never fail a play over a broken driver. Standard library only: this file is
shipped to minimal Debian nodes inside the module's payload.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

# The query gpu_facts sends, in this order; parse_nvidia_smi_csv maps columns by this list.
NVIDIA_QUERY_FIELDS: tuple[str, ...] = (
    "index",
    "name",
    "uuid",
    "memory.total",
    "memory.used",
    "driver_version",
    "compute_cap",
    "pci.bus_id",
)

VENDOR_IDS: dict[str, str] = {"10de": "nvidia", "1002": "amd"}
# BMC video chips sit on every server's PCI bus; they are never an inference device.
BMC_VENDOR_IDS: frozenset[str] = frozenset({"1a03", "102b"})
# VGA, 3D controller, other display controller, processing accelerator (MI300X).
# Bridges [0680] are NVSwitches on HGX/DGX boards: NVIDIA's vendor id, but not GPUs.
DISPLAY_CLASSES: frozenset[str] = frozenset({"0300", "0302", "0380", "1200"})

_NOT_AVAILABLE = frozenset({"", "[n/a]", "n/a", "[not supported]", "not supported", "[unknown error]"})

# LLVM targets that exist only as the integrated GPU of an AMD APU (LLVM's AMDGPU processor table
# marks them APU): Carrizo, Stoney, Raven, Raven2, Renoir/Cezanne, Cyan Skillfish, Van Gogh,
# Rembrandt, Raphael/Granite Ridge, Mendocino, Phoenix/Hawk Point, Strix Point, Strix Halo, Krackan.
# gfx942 is not here: it is both MI300A (an APU) and MI300X (not), so the device id decides.
INTEGRATED_GFX_TARGETS: frozenset[str] = frozenset(
    {
        "gfx801",
        "gfx810",
        "gfx902",
        "gfx909",
        "gfx90c",
        "gfx1013",
        "gfx1033",
        "gfx1035",
        "gfx1036",
        "gfx1037",
        "gfx1103",
        "gfx1150",
        "gfx1151",
        "gfx1152",
        "gfx1153",
    }
)
# PCI ids of APU graphics (pci.ids names), for when no tool gave a gfx target (lspci, sysfs only).
INTEGRATED_PCI_IDS: dict[str, str] = {
    "1002:15dd": "Raven Ridge",
    "1002:15d8": "Picasso/Raven 2",
    "1002:1636": "Renoir",
    "1002:1638": "Cezanne",
    "1002:164c": "Lucienne",
    "1002:15e7": "Barcelo",
    "1002:163f": "Van Gogh",
    "1002:1681": "Rembrandt",
    "1002:164d": "Rembrandt",
    "1002:164e": "Raphael",
    "1002:13c0": "Granite Ridge",
    "1002:1506": "Mendocino",
    "1002:15bf": "Phoenix1",
    "1002:15c8": "Phoenix2",
    "1002:164f": "Phoenix",
    "1002:1900": "Phoenix3",
    "1002:1901": "Phoenix4",
    "1002:150e": "Strix",
    "1002:1586": "Strix Halo",
    "1002:1114": "Krackan",
    "1002:74a0": "Instinct MI300A",
}

Gpu = dict[str, Any]


def new_gpu(
    index: int,
    vendor: str,
    name: str | None = None,
    uuid: str | None = None,
    memory_total_mib: int | None = None,
    compute_capability: str | None = None,
    gfx_target: str | None = None,
    pci_bus_id: str | None = None,
    pci_id: str | None = None,
) -> Gpu:
    """One entry of animaflow_gpu.gpus (and all_gpus), always with every key of the contract.

    integrated, integrated_evidence, used and reason are settled by decide_gpu_facts, which sees
    every source together.
    """
    return {
        "index": index,
        "vendor": vendor,
        "name": name,
        "uuid": uuid,
        "memory_total_mib": memory_total_mib,
        "compute_capability": compute_capability,
        "gfx_target": gfx_target,
        "pci_bus_id": pci_bus_id,
        "pci_id": pci_id,
        "integrated": False,
        "integrated_evidence": None,
        "used": False,
        "reason": None,
    }


def _value(text: str | None) -> str | None:
    """A field's text, or None for the spellings tools use for 'no value'."""
    if text is None:
        return None
    stripped = text.strip()
    return None if stripped.lower() in _NOT_AVAILABLE else stripped


def _int(text: Any) -> int | None:
    value = _value(str(text)) if text is not None else None
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def pci_id(vendor_text: Any, device_text: Any) -> str | None:
    """'vvvv:dddd' from two hex ids as tools print them ('0x1002', '744c'), or None."""
    ids = []
    for text in (vendor_text, device_text):
        value = (_value(str(text)) or "").lower() if text is not None else ""
        value = value[2:] if value.startswith("0x") else value
        if not re.fullmatch(r"[0-9a-f]{4}", value):
            return None
        ids.append(value)
    return f"{ids[0]}:{ids[1]}"


def normalize_bus_id(text: str | None) -> str | None:
    """One spelling for a PCI address: 'dddd:bb:dd.f', lower case.

    nvidia-smi prints an 8-digit domain (00000000:18:00.0), rocm-smi upper case, lspci no domain;
    a single form lets the sources be matched against each other.
    """
    value = _value(text)
    if value is None:
        return None
    match = re.search(r"(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])", value)
    if not match:
        return None
    domain = (match.group(1) or "0000")[-4:]
    return f"{domain}:{match.group(2)}:{match.group(3)}.{match.group(4)}".lower()


# --- NVIDIA -------------------------------------------------------------------------------------


def parse_nvidia_smi_csv(text: str, fields: tuple[str, ...] = NVIDIA_QUERY_FIELDS) -> list[Gpu]:
    """GPUs from `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits`.

    Lines that do not have one value per field, or whose index is not a number, are skipped:
    nvidia-smi prints warnings (e.g. about a GPU that fell off the bus) between the rows.
    """
    gpus: list[Gpu] = []
    for line in text.splitlines():
        columns = [column.strip() for column in line.split(",")]
        if len(columns) != len(fields):
            continue
        row = {name: columns[position] for position, name in enumerate(fields)}
        index = _int(row.get("index"))
        if index is None:
            continue
        gpus.append(
            new_gpu(
                index=index,
                vendor="nvidia",
                name=_value(row.get("name")),
                uuid=_value(row.get("uuid")),
                memory_total_mib=_int(row.get("memory.total")),
                compute_capability=_value(row.get("compute_cap")),
                pci_bus_id=normalize_bus_id(row.get("pci.bus_id")),
            )
        )
    return gpus


def nvidia_driver_version(text: str, fields: tuple[str, ...] = NVIDIA_QUERY_FIELDS) -> str | None:
    """The driver version column of the first well-formed query row."""
    if "driver_version" not in fields:
        return None
    for line in text.splitlines():
        columns = [column.strip() for column in line.split(",")]
        if len(columns) == len(fields) and _int(columns[fields.index("index")]) is not None:
            return _value(columns[fields.index("driver_version")])
    return None


def parse_nvidia_smi_banner(text: str) -> dict[str, str | None]:
    """Driver and CUDA versions from the plain `nvidia-smi` table header.

    The CUDA version there is the highest the driver supports, which is what decides which CUDA
    build of a backend will run; the query interface has no field for it.
    """
    driver = re.search(r"Driver Version:\s*([0-9][0-9.]*)", text)
    cuda = re.search(r"CUDA Version:\s*([0-9][0-9.]*)", text)
    return {
        "driver_version": driver.group(1) if driver else None,
        "cuda_version": cuda.group(1) if cuda else None,
    }


# --- AMD ----------------------------------------------------------------------------------------


def _load_json(text: str) -> Any:
    """JSON from a tool's stdout, or None.

    rocm-smi may print log lines before the document and can exit 0 printing only an error, so
    parse from the first brace or bracket and give up quietly.
    """
    starts = [position for position in (text.find("{"), text.find("[")) if position >= 0]
    if not starts:
        return None
    try:
        return json.loads(text[min(starts) :])
    except ValueError:
        return None


def _lookup(record: dict[str, Any], *names: str) -> Any:
    """A key's value matched case-insensitively: rocm-smi spells 'Card series'/'Card Series'."""
    lowered = {str(key).strip().lower(): value for key, value in record.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def _gfx(text: Any) -> str | None:
    value = _value(str(text)) if text is not None else None
    return value.lower() if value and re.fullmatch(r"gfx[0-9a-f]+", value.lower()) else None


def parse_rocm_smi_json(text: str) -> list[Gpu]:
    """GPUs from `rocm-smi --showproductname --showmeminfo vram --showbus --json`.

    Cards are the 'cardN' keys; a 'system' block and anything else are ignored.
    """
    document = _load_json(text)
    if not isinstance(document, dict):
        return []
    cards = []
    for key, record in document.items():
        match = re.fullmatch(r"card(\d+)", str(key).strip().lower())
        if match and isinstance(record, dict):
            cards.append((int(match.group(1)), record))
    gpus: list[Gpu] = []
    for index, record in sorted(cards, key=lambda card: card[0]):
        vram_bytes = _int(_lookup(record, "VRAM Total Memory (B)"))
        gpus.append(
            new_gpu(
                index=index,
                vendor="amd",
                name=_value(_lookup(record, "Card Series", "Card Model")),
                memory_total_mib=vram_bytes // (1024 * 1024) if vram_bytes is not None else None,
                gfx_target=_gfx(_lookup(record, "GFX Version")),
                pci_bus_id=normalize_bus_id(_lookup(record, "PCI Bus")),
                # 'Card Model' holds the PCI device id ('0x744c') in the releases that print it.
                pci_id=pci_id("1002", _lookup(record, "Card Model")),
            )
        )
    return gpus


_UNIT_TO_MIB = {
    "b": 1 / (1024 * 1024),
    "kb": 1 / 1024,
    "kib": 1 / 1024,
    "mb": 1,
    "mib": 1,
    "gb": 1024,
    "gib": 1024,
}


def _amd_smi_vram_mib(vram: Any) -> int | None:
    """vram.size as {"value": 196592, "unit": "MB"}; amd-smi's 'MB' are MiB (it divides by 2**20)."""
    if not isinstance(vram, dict):
        return None
    size = vram.get("size")
    if isinstance(size, dict):
        value = _int(size.get("value"))
        factor = _UNIT_TO_MIB.get(str(size.get("unit", "MB")).strip().lower())
        if value is None or factor is None:
            return None
        return int(value * factor)
    # Some releases print the size as a bare string, "196592 MB".
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMG]i?B|B)?\s*", str(size or ""), re.IGNORECASE)
    if not match:
        return None
    factor = _UNIT_TO_MIB.get((match.group(2) or "MB").lower(), 1)
    return int(float(match.group(1)) * factor)


def amd_smi_records(text: str) -> list[dict[str, Any]]:
    """The per-GPU records of `amd-smi static --json`: a top-level list in older releases,
    {"gpu_data": [...]} in newer ones."""
    document = _load_json(text)
    if isinstance(document, dict):
        document = document.get("gpu_data")
    if not isinstance(document, list):
        return []
    return [record for record in document if isinstance(record, dict)]


def parse_amd_smi_static(text: str) -> list[Gpu]:
    """GPUs from `amd-smi static --json` (either shape)."""
    gpus: list[Gpu] = []
    for position, record in enumerate(amd_smi_records(text)):
        asic = record.get("asic") if isinstance(record.get("asic"), dict) else {}
        bus = record.get("bus") if isinstance(record.get("bus"), dict) else {}
        index = _int(record.get("gpu"))
        gpus.append(
            new_gpu(
                index=position if index is None else index,
                vendor="amd",
                name=_value(asic.get("market_name")),
                uuid=_value(record.get("uuid")) if isinstance(record.get("uuid"), str) else None,
                memory_total_mib=_amd_smi_vram_mib(record.get("vram")),
                gfx_target=_gfx(asic.get("target_graphics_version")),
                pci_bus_id=normalize_bus_id(bus.get("bdf")),
                pci_id=pci_id(asic.get("vendor_id") or "1002", asic.get("device_id")),
            )
        )
    return gpus


def amd_smi_driver_version(text: str) -> str | None:
    """The amdgpu driver version from the first amd-smi record that has one."""
    for record in amd_smi_records(text):
        driver = record.get("driver")
        if isinstance(driver, dict) and _value(str(driver.get("version", ""))):
            return _value(str(driver["version"]))
    return None


def parse_rocm_version(text: str) -> str | None:
    """/opt/rocm/.info/version holds e.g. '6.1.2-119'; the build number after '-' is dropped
    because backends pick their ROCm builds by release."""
    match = re.match(r"\s*([0-9]+(?:\.[0-9]+)+)", text)
    return match.group(1) if match else None


# --- PCI and sysfs ------------------------------------------------------------------------------

_LSPCI_LINE = re.compile(
    r"^(?P<slot>(?:[0-9a-fA-F]{4,8}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s+"
    r"(?P<class_name>[^\[]*?)\s*\[(?P<class>[0-9a-fA-F]{4})\]:\s*"
    r"(?P<description>.*?)\s*\[(?P<vendor>[0-9a-fA-F]{4}):(?P<device>[0-9a-fA-F]{4})\]"
)


_LSPCI_VENDOR = re.compile(r"^(?:NVIDIA Corporation|Advanced Micro Devices, Inc\. \[AMD(?:/ATI)?\])\s*")


def parse_lspci(text: str) -> list[Gpu]:
    """NVIDIA and AMD GPUs from `lspci -nn`, in bus order, without bridges and BMC chips."""
    gpus: list[Gpu] = []
    for line in text.splitlines():
        match = _LSPCI_LINE.match(line.strip())
        if not match or match.group("class").lower() not in DISPLAY_CLASSES:
            continue
        vendor = VENDOR_IDS.get(match.group("vendor").lower())
        if vendor is None:
            continue
        # "NVIDIA Corporation GH100 [H100 SXM5 80GB]": the bracketed model is the useful name; APU
        # graphics have none ("Advanced Micro Devices, Inc. [AMD/ATI] Raphael"): the chip name is.
        description = _LSPCI_VENDOR.sub("", match.group("description"))
        model = re.findall(r"\[([^\]]+)\]", description)
        name = model[-1] if model else description
        gpus.append(
            new_gpu(
                index=len(gpus),
                vendor=vendor,
                name=name,
                pci_bus_id=normalize_bus_id(match.group("slot")),
                pci_id=pci_id(match.group("vendor"), match.group("device")),
            )
        )
    return gpus


def parse_drm_card(
    vendor_text: str | None,
    vram_total_text: str | None,
    bus_id: str | None,
    index: int,
    device_text: str | None = None,
) -> Gpu | None:
    """One /sys/class/drm/cardN/device entry, or None when it is not an NVIDIA or AMD GPU."""
    vendor_id = (_value(vendor_text) or "").lower().removeprefix("0x")
    vendor = VENDOR_IDS.get(vendor_id)
    if vendor is None:
        return None
    vram_bytes = _int(vram_total_text)
    return new_gpu(
        index=index,
        vendor=vendor,
        memory_total_mib=vram_bytes // (1024 * 1024) if vram_bytes else None,
        pci_bus_id=normalize_bus_id(bus_id),
        pci_id=pci_id(vendor_id, device_text),
    )


def read_text(path: str) -> str | None:
    """A file's text, or None when it cannot be read (missing sysfs/procfs entries are normal)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def scan_drm(sysfs_root: str) -> list[Gpu]:
    """GPUs the kernel bound a DRM driver to, from <sysfs_root>/class/drm/card*/device."""
    drm = os.path.join(sysfs_root, "class", "drm")
    try:
        names = os.listdir(drm)
    except OSError:
        return []
    # Connectors (card0-DP-1) and render nodes share the folder; only cardN are devices.
    cards = sorted((int(name[4:]), name) for name in names if re.fullmatch(r"card\d+", name))
    gpus: list[Gpu] = []
    for _number, name in cards:
        device = os.path.join(drm, name, "device")
        # The device link points at the PCI function's folder, named after its address.
        bus_id = os.path.basename(os.path.realpath(device))
        gpu = parse_drm_card(
            read_text(os.path.join(device, "vendor")),
            read_text(os.path.join(device, "mem_info_vram_total")),
            bus_id,
            len(gpus),
            read_text(os.path.join(device, "device")),
        )
        if gpu is not None:
            gpus.append(gpu)
    return gpus


# --- Vulkan -------------------------------------------------------------------------------------


def parse_vulkaninfo_devices(text: str) -> list[dict[str, str | None]]:
    """The hardware devices in `vulkaninfo --summary`: name, type and PCI id.

    type is deviceType without its prefix (DISCRETE_GPU, INTEGRATED_GPU, ...); Mesa's RADV says
    INTEGRATED_GPU when the amdgpu kernel driver flags the device as an APU's. Software
    rasterisers (llvmpipe, lavapipe, SwiftShader) report CPU and would make a Vulkan backend run
    on the CPU, so they are dropped.
    """
    current: dict[str, str] = {}
    blocks: list[dict[str, str]] = []
    for line in text.splitlines():
        if re.match(r"^GPU\d+:\s*$", line.strip()):
            current = {}
            blocks.append(current)
            continue
        match = re.match(r"^\s*(deviceType|deviceName|vendorID|deviceID)\s*=\s*(.*?)\s*$", line)
        if match and blocks:
            current[match.group(1)] = match.group(2)
    devices: list[dict[str, str | None]] = []
    for block in blocks:
        name = block.get("deviceName", "")
        kind = block.get("deviceType", "").removeprefix("PHYSICAL_DEVICE_TYPE_")
        if kind == "CPU" or "llvmpipe" in name.lower():
            continue
        devices.append(
            {
                "name": name,
                "type": kind or None,
                "pci_id": pci_id(block.get("vendorID"), block.get("deviceID")),
            }
        )
    return devices


def parse_vulkaninfo_summary(text: str) -> list[str]:
    """Names of the hardware devices in `vulkaninfo --summary` (see parse_vulkaninfo_devices)."""
    return [str(device["name"]) for device in parse_vulkaninfo_devices(text)]


# --- Decision -----------------------------------------------------------------------------------


@dataclass
class GpuProbe:
    """What the module found on the node; decide_gpu_facts turns it into animaflow_gpu."""

    nvidia_gpus: list[Gpu] = field(default_factory=list)
    nvidia_driver_version: str | None = None
    cuda_version: str | None = None
    # Why a present nvidia-smi gave no usable answer (exit code and first line), else None.
    nvidia_error: str | None = None
    amd_gpus: list[Gpu] = field(default_factory=list)
    # The tool that listed amd_gpus (amd-smi or rocm-smi), for the reasons given.
    amd_tool: str | None = None
    amd_driver_version: str | None = None
    amd_error: str | None = None
    kfd_present: bool = False
    rocm_version: str | None = None
    pci_gpus: list[Gpu] = field(default_factory=list)
    drm_gpus: list[Gpu] = field(default_factory=list)
    # None: vulkaninfo was not run (absent or not needed); []: it ran and found no hardware device.
    vulkan_devices: list[str] | None = None
    # The same devices with their type and PCI id (parse_vulkaninfo_devices).
    vulkan_hardware: list[dict[str, str | None]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _merge_drm_memory(gpus: list[Gpu], drm_gpus: list[Gpu]) -> list[Gpu]:
    """Fill VRAM sizes and PCI ids lspci cannot know from sysfs (amdgpu exposes mem_info_vram_total)."""
    by_bus = {gpu["pci_bus_id"]: gpu for gpu in drm_gpus if gpu["pci_bus_id"]}
    merged = []
    for gpu in gpus:
        drm = by_bus.get(gpu["pci_bus_id"], {})
        merged.append(
            {
                **gpu,
                "memory_total_mib": gpu["memory_total_mib"] or drm.get("memory_total_mib"),
                "pci_id": gpu["pci_id"] or drm.get("pci_id"),
            }
        )
    return merged


def _fallback_accelerator(gpus: list[Gpu], vulkan_devices: list[str] | None) -> str:
    """Vulkan or CPU for GPUs no vendor tool could drive.

    A hardware Vulkan device listed by vulkaninfo settles it. Without vulkaninfo, an AMD GPU is
    taken as Vulkan-capable (the in-kernel amdgpu driver plus Mesa RADV is the usual state); an
    NVIDIA GPU is not, because its Vulkan driver is the same broken proprietary stack.
    """
    if not gpus:
        return "cpu"
    if vulkan_devices is not None:
        return "vulkan" if vulkan_devices else "cpu"
    return "vulkan" if any(gpu["vendor"] == "amd" for gpu in gpus) else "cpu"


def integration_evidence(gpu: Gpu, vulkan_hardware: list[dict[str, str | None]]) -> str | None:
    """Why this GPU is an APU's integrated GPU, or None when nothing says so.

    Only what a tool reported counts: the LLVM target, the PCI device id, or the Vulkan driver's
    device type (RADV reads the kernel's APU flag). Memory size does not: an APU's VRAM is a
    firmware carve-out, 512 MiB on a Ryzen desktop but up to 96 GiB on Strix Halo.
    """
    if gpu["vendor"] != "amd":
        return None
    if gpu["gfx_target"] in INTEGRATED_GFX_TARGETS:
        return f"{gpu['gfx_target']} is an APU target"
    if gpu["pci_id"] in INTEGRATED_PCI_IDS:
        return f"PCI device {gpu['pci_id']} is {INTEGRATED_PCI_IDS[gpu['pci_id']]} APU graphics"
    for device in vulkan_hardware:
        if device["pci_id"] and device["pci_id"] == gpu["pci_id"] and device["type"] == "INTEGRATED_GPU":
            return "vulkaninfo reports an integrated GPU"
    return None


def _enrich(tool_gpus: list[Gpu], visible: list[Gpu]) -> list[Gpu]:
    """A vendor tool's GPUs with the PCI id lspci/sysfs saw at the same address."""
    ids = {gpu["pci_bus_id"]: gpu["pci_id"] for gpu in visible if gpu["pci_bus_id"]}
    return [{**gpu, "pci_id": gpu["pci_id"] or ids.get(gpu["pci_bus_id"])} for gpu in tool_gpus]


def _not_in(tool_gpus: list[Gpu], visible: list[Gpu], vendor: str) -> list[Gpu]:
    """The visible GPUs of a vendor that its tool did not list (matched by PCI address)."""
    listed = {gpu["pci_bus_id"] for gpu in tool_gpus}
    if tool_gpus and None in listed:
        return []  # a tool without addresses: nothing can be matched, so nothing is added twice
    return [gpu for gpu in visible if gpu["vendor"] == vendor and gpu["pci_bus_id"] not in listed]


def _describe(gpus: list[Gpu]) -> str:
    names = sorted({str(gpu["name"] or gpu["pci_id"] or gpu["vendor"].upper() + " GPU") for gpu in gpus})
    return f"{len(gpus)} x " + ", ".join(names)


def decide_gpu_facts(probe: GpuProbe) -> dict[str, Any]:
    """animaflow_gpu as docs/contracts.md defines it; adds to probe.warnings what it rules out.

    Every GPU any source saw is in all_gpus, each flagged integrated or not and used or not, with
    the reason. The accelerator is chosen from usable discrete GPUs: CUDA when nvidia-smi answers,
    else ROCm for the GPUs amd-smi/rocm-smi list (with /dev/kfd), else Vulkan or the CPU. An
    integrated GPU is used only when no discrete GPU is usable. gpus holds the chosen GPUs.
    """
    warnings = probe.warnings
    visible = _merge_drm_memory(probe.pci_gpus, probe.drm_gpus) if probe.pci_gpus else list(probe.drm_gpus)
    nvidia = _enrich(probe.nvidia_gpus, visible)
    amd = _enrich(probe.amd_gpus, visible)
    # Copies: the flags below are set on these entries, never on the probe's own.
    others = [
        dict(gpu)
        for gpu in (
            *(_not_in(nvidia, visible, "nvidia") if nvidia else []),
            *(_not_in(amd, visible, "amd") if amd else []),
            *[gpu for gpu in visible if gpu["vendor"] == "nvidia" and not nvidia],
            *[gpu for gpu in visible if gpu["vendor"] == "amd" and not amd],
        )
    ]
    for gpu in (*nvidia, *amd, *others):
        evidence = integration_evidence(gpu, probe.vulkan_hardware)
        gpu["integrated"], gpu["integrated_evidence"] = evidence is not None, evidence
    accelerator = "cpu"
    driver_version: str | None = None
    cuda_version: str | None = None
    gpus: list[Gpu]
    why: str

    if nvidia:
        accelerator, gpus = "cuda", nvidia
        driver_version, cuda_version = probe.nvidia_driver_version, probe.cuda_version
        on_pci = len([gpu for gpu in visible if gpu["vendor"] == "nvidia"])
        if on_pci > len(gpus):
            warnings.append(
                f"lspci lists {on_pci} NVIDIA GPUs but nvidia-smi reports {len(gpus)}: "
                "some may have fallen off the bus"
            )
        why = f"cuda: nvidia-smi answered for {_describe(gpus)}"
        if any(not gpu["integrated"] for gpu in (*amd, *others) if gpu["vendor"] == "amd"):
            why += "; the AMD GPUs are not used: one backend runs on one vendor's GPUs and CUDA comes first"
    elif amd:
        discrete = [gpu for gpu in amd if not gpu["integrated"]]
        gpus, driver_version = discrete or amd, probe.amd_driver_version
        tool = probe.amd_tool or "the AMD tools"
        if probe.kfd_present:
            accelerator = "rocm"
            why = f"rocm: {tool} listed {_describe(gpus)} and /dev/kfd exists"
        else:
            accelerator = _fallback_accelerator(gpus, probe.vulkan_devices)
            warnings.append(
                f"AMD tools answered but /dev/kfd is missing: the ROCm kernel driver is not loaded; "
                f"using {accelerator}"
            )
            why = f"{accelerator}: {tool} listed {_describe(gpus)} but /dev/kfd is missing"
        if any(gpu["vendor"] == "nvidia" for gpu in others):
            reason = probe.nvidia_error or "nvidia-smi is not installed"
            warnings.append(f"NVIDIA GPU visible but not usable for CUDA ({reason}); using {accelerator}")
    else:
        # Nothing but lspci/sysfs: Vulkan where it can drive a GPU, discrete GPUs first.
        def vulkan_ok(gpu: Gpu) -> bool:
            if probe.vulkan_devices is not None:
                return bool(probe.vulkan_devices)
            return gpu["vendor"] == "amd"

        usable = [gpu for gpu in others if vulkan_ok(gpu)]
        usable_discrete = [gpu for gpu in usable if not gpu["integrated"]]
        if usable:
            accelerator, gpus = "vulkan", usable_discrete or usable
        else:
            gpus = [gpu for gpu in others if not gpu["integrated"]] or others
        stacks = []
        if any(gpu["vendor"] == "nvidia" for gpu in others):
            reason = probe.nvidia_error or "nvidia-smi is not installed"
            stacks.append(f"CUDA: {reason}")
            warnings.append(f"NVIDIA GPU visible but not usable for CUDA ({reason}); using {accelerator}")
        if any(gpu["vendor"] == "amd" for gpu in others):
            reason = probe.amd_error or "neither amd-smi nor rocm-smi is installed"
            stacks.append(f"ROCm: {reason}")
            warnings.append(f"AMD GPU visible but not usable for ROCm ({reason}); using {accelerator}")
        if not others:
            why = "cpu: no NVIDIA or AMD GPU found"
        else:
            verdict = "Vulkan can drive" if usable else "neither Vulkan nor a vendor stack can drive"
            why = f"{accelerator}: {verdict} {_describe(gpus)} (no {'; no '.join(stacks)})"
        if not others and probe.nvidia_error:
            warnings.append(f"nvidia-smi did not answer ({probe.nvidia_error}) and no GPU is visible")

    all_gpus = [*nvidia, *amd, *others]
    chosen = {id(gpu) for gpu in gpus} if accelerator != "cpu" else set()
    for gpu in all_gpus:
        gpu["used"] = id(gpu) in chosen
        gpu["reason"] = _gpu_reason(gpu, accelerator, chosen, gpus, nvidia, amd, probe)
    integrated_left = [gpu for gpu in all_gpus if gpu["integrated"] and not gpu["used"]]
    if integrated_left and accelerator != "cpu":
        why += f"; integrated GPUs left out: {_describe(integrated_left)}"
    elif gpus and all(gpu["integrated"] for gpu in gpus) and accelerator != "cpu":
        why += "; only integrated GPUs are usable (their memory is shared with the CPU)"

    vendors = [gpu["vendor"] for gpu in gpus]
    vendor = "nvidia" if "nvidia" in vendors else "amd" if "amd" in vendors else "none"
    return {
        "accelerator": accelerator,
        "accelerator_reason": why,
        "vendor": vendor,
        "count": len(gpus),
        # 0 when no GPU reports its size (none at all, or unified memory such as GB10).
        "total_memory_mib": sum(gpu["memory_total_mib"] or 0 for gpu in gpus),
        "driver_version": driver_version,
        "cuda_version": cuda_version,
        "rocm_version": probe.rocm_version,
        "sources": list(probe.sources),
        "gpus": gpus,
        "all_gpus": all_gpus,
    }


def _gpu_reason(
    gpu: Gpu,
    accelerator: str,
    chosen: set[int],
    gpus: list[Gpu],
    nvidia: list[Gpu],
    amd: list[Gpu],
    probe: GpuProbe,
) -> str:
    """One line per GPU: what it is used for, or why it is not."""
    if id(gpu) in chosen:
        return f"used for {accelerator}" + (
            " (integrated: no discrete GPU is usable)" if gpu["integrated"] else ""
        )
    if gpu["integrated"] and any(not other["integrated"] for other in gpus) and accelerator != "cpu":
        return f"not used: integrated GPU ({gpu['integrated_evidence']}); discrete GPUs are used"
    if gpu["vendor"] == "nvidia" and nvidia:
        return "not used: listed by lspci/sysfs but not by nvidia-smi"
    if gpu["vendor"] == "amd" and amd and not any(gpu is entry for entry in amd):
        return f"not used: listed by lspci/sysfs but not by {probe.amd_tool or 'the AMD tools'}"
    if accelerator == "cuda":
        return "not used: CUDA serves the backends on this node and one backend runs on one vendor's GPUs"
    if accelerator == "cpu":
        return "not used: no stack that can drive it answered (see warnings)"
    if gpu["vendor"] == "nvidia":
        return f"not used: {probe.nvidia_error or 'nvidia-smi is not installed'}"
    return f"not used: {accelerator} serves the backends on this node"
