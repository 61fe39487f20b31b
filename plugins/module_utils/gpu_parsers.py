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
) -> Gpu:
    """One entry of animaflow_gpu.gpus, always with every key of the contract."""
    return {
        "index": index,
        "vendor": vendor,
        "name": name,
        "uuid": uuid,
        "memory_total_mib": memory_total_mib,
        "compute_capability": compute_capability,
        "gfx_target": gfx_target,
        "pci_bus_id": pci_bus_id,
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
        # "NVIDIA Corporation GH100 [H100 SXM5 80GB]": the bracketed model is the useful name.
        description = match.group("description")
        model = re.findall(r"\[([^\]]+)\]", description)
        name = model[-1] if model else description
        gpus.append(
            new_gpu(
                index=len(gpus), vendor=vendor, name=name, pci_bus_id=normalize_bus_id(match.group("slot"))
            )
        )
    return gpus


def parse_drm_card(
    vendor_text: str | None, vram_total_text: str | None, bus_id: str | None, index: int
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
        )
        if gpu is not None:
            gpus.append(gpu)
    return gpus


# --- Vulkan -------------------------------------------------------------------------------------


def parse_vulkaninfo_summary(text: str) -> list[str]:
    """Names of the hardware devices in `vulkaninfo --summary`.

    Software rasterisers (llvmpipe, lavapipe, SwiftShader) report PHYSICAL_DEVICE_TYPE_CPU and
    would make a Vulkan backend run on the CPU, so they are dropped.
    """
    devices: list[str] = []
    current: dict[str, str] = {}
    blocks: list[dict[str, str]] = []
    for line in text.splitlines():
        if re.match(r"^GPU\d+:\s*$", line.strip()):
            current = {}
            blocks.append(current)
            continue
        match = re.match(r"^\s*(deviceType|deviceName)\s*=\s*(.*?)\s*$", line)
        if match and blocks:
            current[match.group(1)] = match.group(2)
    for block in blocks:
        name = block.get("deviceName", "")
        if block.get("deviceType", "").endswith("_CPU") or "llvmpipe" in name.lower():
            continue
        devices.append(name)
    return devices


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
    amd_driver_version: str | None = None
    amd_error: str | None = None
    kfd_present: bool = False
    rocm_version: str | None = None
    pci_gpus: list[Gpu] = field(default_factory=list)
    drm_gpus: list[Gpu] = field(default_factory=list)
    # None: vulkaninfo was not run (absent or not needed); []: it ran and found no hardware device.
    vulkan_devices: list[str] | None = None
    sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _merge_drm_memory(gpus: list[Gpu], drm_gpus: list[Gpu]) -> list[Gpu]:
    """Fill VRAM sizes lspci cannot know from sysfs (amdgpu exposes mem_info_vram_total)."""
    memory = {gpu["pci_bus_id"]: gpu["memory_total_mib"] for gpu in drm_gpus if gpu["pci_bus_id"]}
    return [
        {**gpu, "memory_total_mib": gpu["memory_total_mib"] or memory.get(gpu["pci_bus_id"])} for gpu in gpus
    ]


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


def decide_gpu_facts(probe: GpuProbe) -> dict[str, Any]:
    """animaflow_gpu as docs/contracts.md defines it; adds to probe.warnings what it rules out."""
    warnings = probe.warnings
    pci_by_vendor = {
        vendor: [gpu for gpu in probe.pci_gpus if gpu["vendor"] == vendor] for vendor in ("nvidia", "amd")
    }
    accelerator = "cpu"
    driver_version: str | None = None
    cuda_version: str | None = None
    gpus: list[Gpu]

    if probe.nvidia_gpus:
        accelerator, gpus = "cuda", probe.nvidia_gpus
        driver_version, cuda_version = probe.nvidia_driver_version, probe.cuda_version
        on_pci = len(pci_by_vendor["nvidia"])
        if on_pci > len(gpus):
            warnings.append(
                f"lspci lists {on_pci} NVIDIA GPUs but nvidia-smi reports {len(gpus)}: "
                "some may have fallen off the bus"
            )
    elif probe.amd_gpus:
        gpus, driver_version = probe.amd_gpus, probe.amd_driver_version
        if probe.kfd_present:
            accelerator = "rocm"
        else:
            accelerator = _fallback_accelerator(gpus, probe.vulkan_devices)
            warnings.append(
                f"AMD tools answered but /dev/kfd is missing: the ROCm kernel driver is not loaded; "
                f"using {accelerator}"
            )
    else:
        gpus = _merge_drm_memory(probe.pci_gpus, probe.drm_gpus) if probe.pci_gpus else probe.drm_gpus
        accelerator = _fallback_accelerator(gpus, probe.vulkan_devices)
        if any(gpu["vendor"] == "nvidia" for gpu in gpus):
            reason = probe.nvidia_error or "nvidia-smi is not installed"
            warnings.append(f"NVIDIA GPU visible but not usable for CUDA ({reason}); using {accelerator}")
        if any(gpu["vendor"] == "amd" for gpu in gpus):
            reason = probe.amd_error or "neither amd-smi nor rocm-smi is installed"
            warnings.append(f"AMD GPU visible but not usable for ROCm ({reason}); using {accelerator}")
        if not gpus and probe.nvidia_error:
            warnings.append(f"nvidia-smi did not answer ({probe.nvidia_error}) and no GPU is visible")

    vendors = [gpu["vendor"] for gpu in gpus]
    vendor = "nvidia" if "nvidia" in vendors else "amd" if "amd" in vendors else "none"
    return {
        "accelerator": accelerator,
        "vendor": vendor,
        "count": len(gpus),
        # 0 when no GPU reports its size (none at all, or unified memory such as GB10).
        "total_memory_mib": sum(gpu["memory_total_mib"] or 0 for gpu in gpus),
        "driver_version": driver_version,
        "cuda_version": cuda_version,
        "rocm_version": probe.rocm_version,
        "sources": list(probe.sources),
        "gpus": gpus,
    }
