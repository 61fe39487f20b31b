# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""GPU memory bandwidth for the single-stream decode bound: a datasheet table keyed by the names
nvidia-smi, rocm-smi, amd-smi, lspci and vulkaninfo print, and an optional measured device copy.

A model served from GPU memory is bounded by the GPU's memory bandwidth, not the host's: the host
CPU's figure is 20 to 250 times too small there. With tensor parallelism (vLLM, SGLang) each of the
N GPUs reads its 1/N share of the weights at the same time, so the aggregate is N x the per-GPU
figure (the slowest GPU's when they differ). llama.cpp and Ollama split a model by layers: the GPUs
read their layers one after another, so the bound is one GPU's figure however many hold layers.

Standard library only: shipped to the node inside the llm_benchmark module's payload.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

# (pattern on the normalised name, GB/s per GPU as the tools enumerate them, model, source).
# Normalised: lower case, every run of other characters one space, so "NVIDIA A100-SXM4-80GB" reads
# " nvidia a100 sxm4 80gb ". Order matters: the first match wins, so specific names come first.
# Figures are the vendors' peak memory bandwidth (decimal GB/s); measured copies reach 80-93 % of
# them, which keeps the bound an upper bound.
GPU_BANDWIDTH_TABLE: tuple[tuple[str, float, str, str], ...] = (
    # NVIDIA data centre
    (r"\bb200\b", 8000.0, "B200", "NVIDIA DGX B200 datasheet: 64 TB/s HBM3e over 8 GPUs"),
    (r"\bh200\b", 4800.0, "H200 (SXM or NVL)", "NVIDIA H200 datasheet: 4.8 TB/s, SXM and NVL alike"),
    (r"\bgh200\b.*\b(144g|hbm3e)\b", 4900.0, "GH200 144 GB HBM3e", "NVIDIA GH200 datasheet: 4.9 TB/s"),
    (r"\bgh200\b", 4000.0, "GH200 96 GB HBM3", "NVIDIA GH200 datasheet: 4 TB/s"),
    (r"\bh100\b.*\bnvl\b", 3900.0, "H100 NVL", "NVIDIA H100 datasheet: H100 NVL 3.9 TB/s"),
    (r"\bh100\b.*\bpcie\b", 2000.0, "H100 PCIe", "NVIDIA H100 datasheet: H100 PCIe 2 TB/s"),
    # nvidia-smi says "NVIDIA H100 80GB HBM3" for the SXM5 module, lspci "H100 SXM5 80GB".
    (r"\bh100\b", 3350.0, "H100 SXM", "NVIDIA H100 datasheet: H100 SXM 3.35 TB/s"),
    (r"\bh800\b.*\bpcie\b", 2000.0, "H800 PCIe", "NVIDIA H800 PCIe product brief: 2 TB/s"),
    (r"\bh800\b", 3350.0, "H800 SXM", "NVIDIA H800 SXM specifications: 3.35 TB/s"),
    (r"\bh20\b", 4000.0, "H20", "NVIDIA H20 specifications: 96 GB HBM3, 4 TB/s"),
    (r"\ba100\b.*\b80gb\b.*\bpcie\b", 1935.0, "A100 80GB PCIe", "NVIDIA A100 datasheet: 1,935 GB/s"),
    (r"\ba100\b.*\bpcie\b.*\b80gb\b", 1935.0, "A100 80GB PCIe", "NVIDIA A100 datasheet: 1,935 GB/s"),
    (r"\ba100\b.*\b80gb\b", 2039.0, "A100 80GB SXM", "NVIDIA A100 datasheet: 2,039 GB/s"),
    (r"\ba100\b", 1555.0, "A100 40GB (SXM or PCIe)", "NVIDIA A100 datasheet: 1,555 GB/s"),
    (r"\ba30\b", 933.0, "A30", "NVIDIA A30 datasheet: 933 GB/s"),
    (r"\ba40\b", 696.0, "A40", "NVIDIA A40 datasheet: 696 GB/s"),
    (r"\ba10g?\b", 600.0, "A10 / A10G", "NVIDIA A10 datasheet: 600 GB/s (AWS lists the same for A10G)"),
    (r"\ba16\b", 200.0, "A16 (per GPU, 4 per board)", "NVIDIA A16 datasheet: 4 x 200 GB/s"),
    (r"\ba2\b", 200.0, "A2", "NVIDIA A2 datasheet: 200 GB/s"),
    (r"\bl40s\b", 864.0, "L40S", "NVIDIA L40S datasheet: 864 GB/s"),
    (r"\bl40\b", 864.0, "L40", "NVIDIA L40 datasheet: 864 GB/s"),
    (r"\bl4\b", 300.0, "L4", "NVIDIA L4 datasheet: 300 GB/s"),
    (r"\bv100s\b", 1134.0, "V100S PCIe", "NVIDIA V100S datasheet: 1,134 GB/s"),
    (r"\bv100\b", 900.0, "V100 (SXM2 or PCIe)", "NVIDIA V100 datasheet: 900 GB/s"),
    (r"\bt4\b", 320.0, "T4", "NVIDIA T4 datasheet: 320 GB/s"),
    (r"\bgb10\b", 273.0, "GB10 (DGX Spark)", "NVIDIA DGX Spark specifications: 273 GB/s LPDDR5x, unified"),
    # NVIDIA workstation
    (r"\brtx pro 6000\b", 1792.0, "RTX PRO 6000 Blackwell", "NVIDIA RTX PRO 6000 Blackwell datasheet: 1,792 GB/s"),
    (r"\brtx 6000 ada\b", 960.0, "RTX 6000 Ada", "NVIDIA RTX 6000 Ada datasheet: 960 GB/s"),
    (r"\brtx 5000 ada\b", 576.0, "RTX 5000 Ada", "NVIDIA RTX 5000 Ada datasheet: 576 GB/s"),
    (r"\brtx 4000 ada\b", 360.0, "RTX 4000 Ada", "NVIDIA RTX 4000 Ada datasheet: 360 GB/s"),
    (r"\brtx a6000\b", 768.0, "RTX A6000", "NVIDIA RTX A6000 datasheet: 768 GB/s"),
    (r"\brtx a5000\b", 768.0, "RTX A5000", "NVIDIA RTX A5000 datasheet: 768 GB/s"),
    (r"\brtx a4000\b", 448.0, "RTX A4000", "NVIDIA RTX A4000 datasheet: 448 GB/s"),
    (r"\bquadro rtx [68]000\b", 672.0, "Quadro RTX 6000/8000", "NVIDIA Quadro RTX 6000/8000 datasheets: 672 GB/s"),
    # NVIDIA GeForce
    (r"\brtx 5090\b", 1792.0, "GeForce RTX 5090", "NVIDIA RTX 5090 specifications: 1,792 GB/s"),
    (r"\brtx 5080\b", 960.0, "GeForce RTX 5080", "NVIDIA RTX 5080 specifications: 960 GB/s"),
    (r"\brtx 4090\b", 1008.0, "GeForce RTX 4090", "NVIDIA RTX 4090 specifications: 1,008 GB/s (21 Gbps x 384 bit)"),
    (r"\brtx 4080 super\b", 736.0, "GeForce RTX 4080 SUPER", "NVIDIA specifications: 23 Gbps x 256 bit = 736 GB/s"),
    (r"\brtx 4080\b", 716.8, "GeForce RTX 4080", "NVIDIA specifications: 22.4 Gbps x 256 bit = 716.8 GB/s"),
    (r"\brtx 3090 ti\b", 1008.0, "GeForce RTX 3090 Ti", "NVIDIA specifications: 21 Gbps x 384 bit = 1,008 GB/s"),
    (r"\brtx 3090\b", 936.0, "GeForce RTX 3090", "NVIDIA RTX 3090 specifications: 936 GB/s"),
    (r"\brtx 3080 ti\b", 912.0, "GeForce RTX 3080 Ti", "NVIDIA specifications: 19 Gbps x 384 bit = 912 GB/s"),
    # AMD Instinct: ROCm enumerates each GCD of an MI250/MI250X as its own GPU with its own HBM.
    (r"\bmi35[05]x\b", 8000.0, "Instinct MI350X / MI355X", "AMD Instinct MI350 series datasheet: 8 TB/s"),
    (r"\bmi325x\b", 6000.0, "Instinct MI325X", "AMD Instinct MI325X datasheet: 6 TB/s"),
    (r"\bmi300[ax]\b", 5300.0, "Instinct MI300X / MI300A", "AMD Instinct MI300X and MI300A datasheets: 5.3 TB/s"),
    (
        r"\bmi250x?\b",
        1638.4,
        "Instinct MI250 / MI250X (per GCD)",
        "AMD Instinct MI250X datasheet: 3.2768 TB/s per OAM, two GCDs of 1.6 TB/s each",
    ),
    (r"\bmi210\b", 1638.4, "Instinct MI210", "AMD Instinct MI210 datasheet: 1.6 TB/s"),
    (r"\bmi100\b", 1228.8, "Instinct MI100", "AMD Instinct MI100 datasheet: 1.23 TB/s"),
    # AMD Radeon PRO and Radeon
    (r"\bw7900\b", 864.0, "Radeon PRO W7900", "AMD Radeon PRO W7900 specifications: 864 GB/s"),
    (r"\bw7800\b", 576.0, "Radeon PRO W7800", "AMD Radeon PRO W7800 specifications: 576 GB/s"),
    (r"\bw6800\b", 512.0, "Radeon PRO W6800", "AMD Radeon PRO W6800 specifications: 512 GB/s"),
    (r"\brx 7900 xtx\b", 960.0, "Radeon RX 7900 XTX", "AMD RX 7900 XTX specifications: 960 GB/s"),
    (r"\brx 7900 xt\b", 800.0, "Radeon RX 7900 XT", "AMD RX 7900 XT specifications: 800 GB/s"),
    (r"\brx 7900 gre\b", 576.0, "Radeon RX 7900 GRE", "AMD RX 7900 GRE specifications: 576 GB/s"),
    (r"\brx 9070( xt)?\b", 640.0, "Radeon RX 9070 / 9070 XT", "AMD specifications: 20 Gbps x 256 bit = 640 GB/s"),
    (r"\brx 6[89]00( xt)?\b", 512.0, "Radeon RX 6800 / 6900", "AMD specifications: 16 Gbps x 256 bit = 512 GB/s"),
)  # fmt: skip

GPU_SPLITS = ("tensor", "layer")
# Backends that split a model over several GPUs by layers (llama.cpp -sm layer, Ollama's scheduler).
LAYER_SPLIT_BACKENDS = frozenset({"llamacpp", "ollama"})


def default_gpu_split(backend: str | None) -> str:
    return "layer" if backend in LAYER_SPLIT_BACKENDS else "tensor"


def _normalise(name: str) -> str:
    return " " + " ".join(re.sub(r"[^a-z0-9]+", " ", name.lower()).split()) + " "


def lookup_gpu_bandwidth(name: str | None) -> dict[str, Any] | None:
    """The datasheet entry for a GPU name, or None when the table does not know it.

    A name listing alternatives (lspci's "Radeon RX 7900 XT/7900 XTX/7900M") names a family, not a
    model: no figure rather than a guess.
    """
    if not name or "/" in name:
        return None
    text = _normalise(name)
    for pattern, gbps, model, source in GPU_BANDWIDTH_TABLE:
        if re.search(pattern, text):
            return {"name": name, "model": model, "gbps": gbps, "datasheet": source}
    return None


def used_gpus(gpu_facts: dict[str, Any] | None) -> tuple[list[dict[str, Any]], str | None]:
    """The GPUs the accelerator runs on, or the reason there are none."""
    if not gpu_facts:
        return [], "no GPU facts were given (gpu option)"
    if (gpu_facts.get("accelerator") or "cpu") == "cpu":
        return [], "the GPU facts show no usable GPU (accelerator cpu)"
    gpus = [gpu for gpu in gpu_facts.get("gpus") or [] if isinstance(gpu, dict) and gpu.get("used", True)]
    if not gpus:
        return [], "the GPU facts list no GPU"
    return gpus, None


def gpu_datasheet_bandwidth(
    gpu_facts: dict[str, Any] | None, gpus_used: int | None = None, split: str = "tensor"
) -> dict[str, Any]:
    """The decode bound's bandwidth from the datasheet table: {gbps, source, method, gpus, ...}.

    gbps is None (and method says why) when a GPU is missing from the table or the facts.
    """
    gpus, reason = used_gpus(gpu_facts)
    count = gpus_used or len(gpus)
    result: dict[str, Any] = {"gbps": None, "source": None, "gpus_used": count or None, "gpu_split": split}
    if reason:
        return {**result, "method": f"no GPU bandwidth: {reason}"}
    if count > len(gpus):
        return {**result, "method": f"no GPU bandwidth: {count} GPUs used but the facts list {len(gpus)}"}
    entries = [lookup_gpu_bandwidth(gpu.get("name")) for gpu in gpus[:count]]
    unknown = sorted(
        {str(gpu.get("name")) for gpu, entry in zip(gpus[:count], entries, strict=True) if entry is None}
    )
    if unknown:
        return {
            **result,
            "method": f"no datasheet figure for {', '.join(unknown)}: pass memory_bandwidth_gbps (its GB/s x the GPUs "
            "a tensor-parallel server uses)",
        }
    figures = [entry["gbps"] for entry in entries if entry]
    gbps, how = _aggregate(figures, split)
    models = sorted(
        {f"{entry['model']} {entry['gbps']:g} GB/s ({entry['datasheet']})" for entry in entries if entry}
    )
    return {
        **result,
        "gbps": gbps,
        "source": "gpu_datasheet",
        "method": f"datasheet peak memory bandwidth of {'; '.join(models)}; {how}",
        "per_gpu_gbps": figures,
    }


def _aggregate(figures: list[float], split: str) -> tuple[float, str]:
    count = len(figures)
    if split == "layer":
        # Layers are read one GPU after another: time = sum(share_i / bw_i) >= bytes / max(bw).
        return max(figures), f"{count} GPU(s) split by layers read one after another: one GPU's figure"
    return round(count * min(figures), 1), (
        f"{count} GPU(s) with tensor parallelism each read model_bytes/{count} at once: "
        f"{count} x the slowest GPU's figure"
    )


# Run with the backend virtualenv's python (vLLM and SGLang bring torch): device 0 only, so the
# caller multiplies by the GPUs used. torch.cuda is also ROCm's torch API. The buffer is far larger
# than any GPU's last-level cache (H100 L2 50 MB, MI300X Infinity Cache 256 MB) and shrinks to fit
# the memory the serving process left free.
DEVICE_PROBE_SCRIPT = r"""
import json, sys
import torch
if not torch.cuda.is_available():
    print(json.dumps({"error": "torch sees no GPU"})); sys.exit(0)
mib, repeats = int(sys.argv[1]), int(sys.argv[2])
free, _ = torch.cuda.mem_get_info(0)
mib = min(mib, int(free / 3 / 2**20))
if mib < 256:
    print(json.dumps({"error": "only %d MiB of GPU memory free" % (free >> 20)})); sys.exit(0)
dev = torch.device("cuda", 0)
a = torch.ones(mib << 18, dtype=torch.float32, device=dev)
b = torch.empty_like(a)
def best(step):
    step(); torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(); step(); end.record(); end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return min(times)
size = a.numel() * a.element_size()
copy_s = best(lambda: b.copy_(a))
read_s = best(lambda: a.sum())
print(json.dumps({
    "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
    "hip": getattr(torch.version, "hip", None), "buffer_mib": mib, "repeats": repeats,
    "copy_gbps": 2 * size / copy_s / 1e9, "read_gbps": size / read_s / 1e9,
}))
"""


def parse_device_probe(text: str) -> dict[str, Any]:
    """The probe's result from its stdout (its last JSON line): {device, copy_gbps, read_gbps, ...}
    or {error}. Anything else the interpreter printed (warnings) is skipped."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        if data.get("error"):
            return {"error": str(data["error"])}
        figures = [data.get(key) for key in ("copy_gbps", "read_gbps")]
        if all(isinstance(value, (int, float)) and value > 0 for value in figures):
            return data
        return {"error": "the probe printed no positive copy_gbps and read_gbps"}
    return {"error": "the probe printed no result" + (f": {text.strip()[-200:]}" if text.strip() else "")}


def measure_gpu_bandwidth(
    python: str,
    gpus_used: int,
    split: str = "tensor",
    buffer_mib: int = 1024,
    repeats: int = 5,
    timeout_s: float = 180,
) -> dict[str, Any]:
    """Time a device-to-device copy and a reduction on GPU 0 with the given interpreter's torch.

    Unproven on real hardware in this collection's tests (no GPU where they run); the parsing is.
    Returns {gbps, source 'gpu_measured', method, ...}, or {gbps None, method: why not}.
    """
    try:
        done = subprocess.run(
            [python, "-c", DEVICE_PROBE_SCRIPT, str(buffer_mib), str(repeats)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        probe = parse_device_probe(done.stdout)
        if "error" in probe and done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [""])[-1]
            probe = {"error": f"{python} exited {done.returncode}: {last[:200]}"}
    except (OSError, subprocess.SubprocessError) as error:
        probe = {"error": f"{python} could not run: {error}"}
    if "error" in probe:
        return {"gbps": None, "source": None, "method": f"GPU probe failed: {probe['error']}"}
    per_gpu = round(max(probe["copy_gbps"], probe["read_gbps"]), 1)
    gbps, how = _aggregate([per_gpu] * gpus_used, split)
    return {
        "gbps": gbps,
        "source": "gpu_measured",
        "method": (
            f"measured on GPU 0 ({probe.get('device')}, torch {probe.get('torch')}) with {python}: best of "
            f"{probe.get('repeats')} device-to-device copies of a {probe.get('buffer_mib')} MiB buffer "
            f"({probe['copy_gbps']:.0f} GB/s counting read and write) and of sums over it "
            f"({probe['read_gbps']:.0f} GB/s read), timed with CUDA/HIP events; the larger, {per_gpu:g} GB/s, "
            f"per GPU; {how}"
        ),
        "per_gpu_gbps": [per_gpu] * gpus_used,
        "gpus_used": gpus_used,
        "gpu_split": split,
        "probe": probe,
    }
