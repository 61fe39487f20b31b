#!/usr/bin/python
# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Thin AnsibleModule wrapper: run the GPU tools, hand their output to the parsers."""

from __future__ import annotations

import os
import platform
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.animaflow.inference.plugins.module_utils.cpu_parsers import (
    parse_cpuinfo,
    parse_meminfo,
)
from ansible_collections.animaflow.inference.plugins.module_utils.gpu_parsers import (
    NVIDIA_QUERY_FIELDS,
    GpuProbe,
    amd_smi_driver_version,
    decide_gpu_facts,
    nvidia_driver_version,
    parse_amd_smi_static,
    parse_lspci,
    parse_nvidia_smi_banner,
    parse_nvidia_smi_csv,
    parse_rocm_smi_json,
    parse_rocm_version,
    parse_vulkaninfo_devices,
    read_text,
    scan_drm,
)

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Find which accelerator an inference backend can use on a node
version_added: "0.1.0"
description:
  - Runs C(nvidia-smi), C(amd-smi), C(rocm-smi) and C(lspci) when they are on the PATH, reads
    sysfs, C(/dev/kfd) and the ROCm version file, and decides what an LLM backend can actually
    use on the node - CUDA, ROCm, Vulkan or the CPU.
  - Never fails because a tool is missing, broken, prints nothing, prints C([N/A]), hangs past
    O(timeout) or exits non-zero. A driver that cannot talk to its GPU is not reported as usable
    CUDA or ROCm; the GPU is still listed (from C(lspci) or sysfs) and a warning says why.
  - Also reports the CPU facts a CPU backend needs (physical cores, AVX flags, RAM).
  - Read-only; safe in check mode.
author:
  - AnimaFlow Inference contributors
options:
  sysfs_root:
    description: Where sysfs is mounted; C(class/drm/card*/device) is read below it.
    type: path
    default: /sys
  proc_root:
    description: Where procfs is mounted; C(cpuinfo) and C(meminfo) are read below it.
    type: path
    default: /proc
  dev_root:
    description: Where device nodes live; C(kfd) below it means the ROCm kernel driver is loaded.
    type: path
    default: /dev
  rocm_path:
    description: The ROCm install; its C(.info/version) gives RV(ansible_facts.animaflow_gpu.rocm_version).
    type: path
    default: /opt/rocm
  timeout:
    description:
      - Seconds each tool may run before it is stopped and treated as not answering.
      - Enforced with coreutils C(timeout) when it is installed.
    type: int
    default: 20
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
notes:
  - Only NVIDIA (PCI vendor 10de) and AMD (1002) devices count as GPUs; BMC video chips
    (ASPEED, Matrox) and NVSwitch bridges are ignored.
  - Every GPU any source saw is listed in RV(ansible_facts.animaflow_gpu.all_gpus), both vendors
    on a mixed node. The accelerator is chosen from the usable discrete GPUs - CUDA first, then
    ROCm, then Vulkan - and RV(ansible_facts.animaflow_gpu.accelerator_reason) says why.
  - An AMD APU's integrated GPU is recognised by its LLVM target (e.g. C(gfx1036), C(gfx1103),
    C(gfx1151)), its PCI device id, or Vulkan's C(INTEGRATED_GPU) device type, never by its memory
    size (a firmware carve-out, 512 MiB on a Ryzen desktop and up to 96 GiB on Strix Halo). It is
    used only when no discrete GPU is usable.
  - Without C(vulkaninfo), an AMD GPU that ROCm cannot use is taken as Vulkan-capable (amdgpu
    plus Mesa RADV); an NVIDIA GPU whose driver does not answer is not.
"""

EXAMPLES = r"""
- name: Gather GPU and CPU facts
  animaflow.inference.gpu_facts:

- name: Give slow drivers more time (first nvidia-smi call after boot can take a while)
  animaflow.inference.gpu_facts:
    timeout: 60

- name: Pick the CUDA build when a usable NVIDIA GPU is there
  ansible.builtin.debug:
    msg: "{{ ansible_facts.animaflow_gpu.count }} x {{ ansible_facts.animaflow_gpu.gpus[0].name }}"
  when: ansible_facts.animaflow_gpu.accelerator == 'cuda'
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    animaflow_gpu:
      description: What a backend can use on this node.
      returned: always
      type: dict
      contains:
        accelerator:
          description: C(cuda) or C(rocm) when the vendor stack answered, C(vulkan) when a GPU is
            visible but only Vulkan can drive it, C(cpu) otherwise.
          type: str
          sample: cuda
        accelerator_reason:
          description: Why that accelerator, on which GPUs, and which GPUs were left out.
          type: str
          sample: "rocm: amd-smi listed 1 x AMD Radeon RX 7900 XTX and /dev/kfd exists; integrated GPUs left out: 1 x AMD Radeon Graphics"
        vendor:
          description: C(nvidia), C(amd) or C(none).
          type: str
          sample: nvidia
        count:
          description: Number of GPUs in RV(ansible_facts.animaflow_gpu.gpus).
          type: int
          sample: 8
        total_memory_mib:
          description: Sum of the GPUs' memory in MiB; 0 when no GPU reports it.
          type: int
          sample: 652472
        driver_version:
          description: NVIDIA or amdgpu driver version, when known.
          type: str
          sample: "550.54.15"
        cuda_version:
          description: Highest CUDA version the NVIDIA driver supports (from the nvidia-smi banner).
          type: str
          sample: "12.4"
        rocm_version:
          description: ROCm release from C(<rocm_path>/.info/version), without the build number.
          type: str
          sample: "6.1.2"
        sources:
          description: The tools and files that answered with GPU data.
          type: list
          elements: str
          sample: [nvidia-smi, lspci]
        gpus:
          description:
            - One entry per GPU the accelerator runs on (with C(cpu), the GPUs that were seen but
              could not be used). RV(ansible_facts.animaflow_gpu.count) and
              RV(ansible_facts.animaflow_gpu.total_memory_mib) count these.
            - Each entry has the keys of RV(ansible_facts.animaflow_gpu.all_gpus).
          type: list
          elements: dict
        all_gpus:
          description: Every NVIDIA and AMD GPU found, used or not, vendor tools' entries first.
          type: list
          elements: dict
          contains:
            index:
              description: The vendor tool's index, else the order on the PCI bus.
              type: int
            vendor:
              description: C(nvidia) or C(amd).
              type: str
            name:
              description: Product name, when a tool gave one.
              type: str
              sample: NVIDIA H100 80GB HBM3
            uuid:
              description: NVIDIA GPU UUID (null for AMD).
              type: str
              sample: GPU-bc5610b9-79c8-fedd-8899-07539c7f868a
            memory_total_mib:
              description: Memory in MiB, null when unknown.
              type: int
              sample: 81559
            compute_capability:
              description: NVIDIA compute capability, null otherwise.
              type: str
              sample: "9.0"
            gfx_target:
              description: AMD LLVM target, null otherwise.
              type: str
              sample: gfx942
            pci_bus_id:
              description: PCI address as C(dddd:bb:dd.f), lower case.
              type: str
              sample: "0000:18:00.0"
            pci_id:
              description: PCI vendor and device id as C(vvvv:dddd), when a source gave it.
              type: str
              sample: "1002:744c"
            integrated:
              description: True for an APU's integrated GPU (its memory is shared with the CPU).
              type: bool
            integrated_evidence:
              description: What showed it is integrated; null for discrete GPUs.
              type: str
              sample: gfx1036 is an APU target
            used:
              description: >-
                True when it is one of RV(ansible_facts.animaflow_gpu.gpus) and the accelerator
                is not C(cpu).
              type: bool
            reason:
              description: What it is used for, or why it is not.
              type: str
              sample: "not used: integrated GPU (gfx1036 is an APU target); discrete GPUs are used"
    animaflow_cpu:
      description: CPU and RAM facts.
      returned: always
      type: dict
      contains:
        model:
          description: CPU model name.
          type: str
          sample: Intel(R) Xeon(R) Gold 6326 CPU @ 2.90GHz
        architecture:
          description: Machine architecture.
          type: str
          sample: x86_64
        sockets:
          description: Populated CPU sockets.
          type: int
          sample: 2
        physical_cores:
          description: Physical cores over all sockets (what thread pools should be sized by).
          type: int
          sample: 32
        logical_cpus:
          description: Logical CPUs (hardware threads).
          type: int
          sample: 64
        avx:
          description: CPU has AVX.
          type: bool
        avx2:
          description: CPU has AVX2.
          type: bool
        avx512f:
          description: CPU has AVX-512 Foundation.
          type: bool
        memory_total_mib:
          description: MemTotal in MiB.
          type: int
          sample: 515581
        memory_available_mib:
          description: MemAvailable in MiB.
          type: int
          sample: 498123
sources:
  description: Every tool and file that answered, GPU and CPU alike.
  returned: always
  type: list
  elements: str
  sample: [nvidia-smi, lspci, cpuinfo, meminfo]
warnings:
  description: Why a GPU was not counted as usable, which tool timed out or failed.
  returned: when there is something to say
  type: list
  elements: str
"""

# coreutils timeout exits 124 when it stopped the command, 137 when it had to SIGKILL it.
TIMED_OUT = (124, 137)


class Tools:
    """Runs the node's tools so that nothing they do can fail the module."""

    def __init__(self, module: AnsibleModule, timeout: int) -> None:
        self.module = module
        self.timeout = timeout
        self.timeout_bin = module.get_bin_path("timeout")

    def find(self, name: str) -> str | None:
        return self.module.get_bin_path(name)

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        command = list(argv)
        if self.timeout_bin:
            command = [self.timeout_bin, "--kill-after=2", str(self.timeout), *command]
        try:
            # C locale: parsers match English labels; handle_exceptions=False so a tool that cannot
            # be executed comes back here instead of failing the module.
            return self.module.run_command(
                command,
                environ_update={"LC_ALL": "C", "LANG": "C"},
                handle_exceptions=False,
            )
        except Exception as error:  # any OSError or decoding problem is 'did not answer'
            return 127, "", str(error)

    def describe(self, name: str, rc: int, out: str, err: str) -> str:
        """One line for a warning: exit code and the tool's own first words."""
        if rc in TIMED_OUT and self.timeout_bin:
            return f"{name} timed out after {self.timeout} s"
        message = next((line.strip() for line in (err + "\n" + out).splitlines() if line.strip()), "")
        if rc == 0:
            return f"{name} printed no usable output" + (f": {message[:160]}" if message else "")
        return f"{name} exited {rc}" + (f": {message[:160]}" if message else "")


def probe_nvidia(tools: Tools, probe: GpuProbe) -> None:
    path = tools.find("nvidia-smi")
    if not path:
        return
    fields = NVIDIA_QUERY_FIELDS
    rc, out, err = tools.run([path, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"])
    if rc != 0 and "not a valid field" in (out + err):
        # Drivers before 510 do not know compute_cap; the rest of the row is still worth having.
        fields = tuple(name for name in NVIDIA_QUERY_FIELDS if name != "compute_cap")
        rc, out, err = tools.run([path, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"])
    gpus = parse_nvidia_smi_csv(out, fields) if rc == 0 else []
    if not gpus:
        probe.nvidia_error = tools.describe("nvidia-smi", rc, out, err)
        return
    probe.nvidia_gpus = gpus
    probe.nvidia_driver_version = nvidia_driver_version(out, fields)
    probe.sources.append("nvidia-smi")
    rc, out, err = tools.run([path])
    banner = parse_nvidia_smi_banner(out) if rc == 0 else {"cuda_version": None}
    probe.cuda_version = banner["cuda_version"]
    if probe.cuda_version is None:
        probe.warnings.append(
            "nvidia-smi answered the query but its banner gave no CUDA version ("
            + tools.describe("nvidia-smi", rc, out, err)
            + ")"
        )


def probe_amd(tools: Tools, probe: GpuProbe, sysfs_root: str) -> None:
    errors = []
    path = tools.find("amd-smi")
    if path:
        rc, out, err = tools.run([path, "static", "--json"])
        gpus = parse_amd_smi_static(out) if rc == 0 else []
        if gpus:
            probe.amd_gpus, probe.amd_tool = gpus, "amd-smi"
            probe.amd_driver_version = amd_smi_driver_version(out)
            probe.sources.append("amd-smi")
        else:
            errors.append(tools.describe("amd-smi", rc, out, err))
    path = tools.find("rocm-smi")
    if path and not probe.amd_gpus:
        rc, out, err = tools.run([path, "--showproductname", "--showmeminfo", "vram", "--showbus", "--json"])
        # rocm-smi exits 0 after printing 'ERROR:root:Driver not initialized': the parse decides.
        gpus = parse_rocm_smi_json(out)
        if gpus:
            probe.amd_gpus, probe.amd_tool = gpus, "rocm-smi"
            probe.sources.append("rocm-smi")
        else:
            errors.append(tools.describe("rocm-smi", rc, out, err))
    if probe.amd_gpus and not probe.amd_driver_version:
        # rocm-smi's product query has no driver version; the DKMS amdgpu module exposes it.
        version = read_text(os.path.join(sysfs_root, "module", "amdgpu", "version"))
        probe.amd_driver_version = version.strip() if version and version.strip() else None
    if errors and not probe.amd_gpus:
        probe.amd_error = "; ".join(errors)


def probe_pci(tools: Tools, probe: GpuProbe, sysfs_root: str) -> None:
    path = tools.find("lspci")
    if path:
        rc, out, err = tools.run([path, "-nn"])
        if rc == 0 and out.strip():
            probe.pci_gpus = parse_lspci(out)
            probe.sources.append("lspci")
        else:
            probe.warnings.append(tools.describe("lspci", rc, out, err))
    probe.drm_gpus = scan_drm(sysfs_root)
    if probe.drm_gpus:
        probe.sources.append("sysfs")


def probe_vulkan(tools: Tools, probe: GpuProbe) -> None:
    """Only asked when a GPU is visible that no vendor stack can drive."""
    path = tools.find("vulkaninfo")
    if not path:
        return
    rc, out, err = tools.run([path, "--summary"])
    if rc == 0:
        probe.vulkan_hardware = parse_vulkaninfo_devices(out)
        probe.vulkan_devices = [str(device["name"]) for device in probe.vulkan_hardware]
        probe.sources.append("vulkaninfo")
    else:
        # Installed but failing (no ICD, no device): Vulkan is not usable either.
        probe.vulkan_devices = []
        probe.warnings.append(tools.describe("vulkaninfo", rc, out, err))


def gather(params: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """The module's result without 'changed': ansible_facts, sources, warnings."""
    probe = GpuProbe()
    probe_nvidia(tools, probe)
    # Asked on NVIDIA nodes too: a node can hold both vendors' GPUs, and all_gpus lists every one.
    probe_amd(tools, probe, params["sysfs_root"])
    probe_pci(tools, probe, params["sysfs_root"])
    probe.kfd_present = os.path.exists(os.path.join(params["dev_root"], "kfd"))
    rocm_version = read_text(os.path.join(params["rocm_path"], ".info", "version"))
    probe.rocm_version = parse_rocm_version(rocm_version) if rocm_version else None
    needs_vulkan = not probe.nvidia_gpus and (
        (probe.amd_gpus and not probe.kfd_present)
        or (not probe.amd_gpus and (probe.pci_gpus or probe.drm_gpus))
    )
    if needs_vulkan:
        probe_vulkan(tools, probe)
    gpu = decide_gpu_facts(probe)

    sources = list(probe.sources)
    cpuinfo = read_text(os.path.join(params["proc_root"], "cpuinfo"))
    meminfo = read_text(os.path.join(params["proc_root"], "meminfo"))
    cpu = parse_cpuinfo(cpuinfo or "", platform.machine() or None)
    cpu.update(parse_meminfo(meminfo or ""))
    for name, text in (("cpuinfo", cpuinfo), ("meminfo", meminfo)):
        if text:
            sources.append(name)
        else:
            probe.warnings.append(f"could not read {os.path.join(params['proc_root'], name)}")
    return {
        "ansible_facts": {"animaflow_gpu": gpu, "animaflow_cpu": cpu},
        "sources": sources,
        "warnings": list(probe.warnings),
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "sysfs_root": {"type": "path", "default": "/sys"},
            "proc_root": {"type": "path", "default": "/proc"},
            "dev_root": {"type": "path", "default": "/dev"},
            "rocm_path": {"type": "path", "default": "/opt/rocm"},
            "timeout": {"type": "int", "default": 20},
        },
        supports_check_mode=True,
    )
    result = gather(module.params, Tools(module, module.params["timeout"]))
    # module.warn shows them to the operator and returns them as the result's 'warnings'.
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
