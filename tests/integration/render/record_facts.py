#!/usr/bin/env python3
"""Record the facts the render tests load: gpu_facts run on recorded tool outputs (tests/unit/fixtures/gpu).

Each node's nvidia-smi / rocm-smi / lspci print the recorded files, /proc holds a recorded cpuinfo and
meminfo, /dev/kfd exists on the ROCm nodes. The module's ansible_facts are written to facts/<node>.json
with the few setup facts the roles read (architecture, python, memtotal_mb).

    python tests/integration/render/record_facts.py     # rewrites facts/*.json
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
FIXTURES = REPO / "tests" / "unit" / "fixtures" / "gpu"
MODULE = "ansible_collections.animaflow.inference.plugins.modules.gpu_facts"


def prints(name: str) -> str:
    return f"#!/bin/sh\n/bin/cat '{FIXTURES / name}'\n"


def nvidia(query: str, banner: str) -> str:
    return f"#!/bin/sh\ncase \"$*\" in *--query-gpu*) /bin/cat '{FIXTURES / query}';; *) /bin/cat '{FIXTURES / banner}';; esac\n"


NODES = {
    "h100x8": {
        "tools": {
            "nvidia-smi": nvidia("nvidia_smi_query_h100x8.txt", "nvidia_smi_banner_h100x8.txt"),
            "lspci": prints("lspci_dgx_h100.txt"),
        },
        "cpuinfo": "cpuinfo_xeon_gold_6326_2s.txt",
    },
    "rtx4090": {
        "tools": {
            "nvidia-smi": nvidia("nvidia_smi_query_rtx4090.txt", "nvidia_smi_banner_rtx4090.txt"),
            "lspci": prints("lspci_cpu_only_matrox.txt"),
        },
        "cpuinfo": "cpuinfo_ryzen9_5950x.txt",
    },
    "mi300x2": {
        "tools": {"rocm-smi": prints("rocm_smi_mi300x_x2.json"), "lspci": prints("lspci_mi300x.txt")},
        "cpuinfo": "cpuinfo_xeon_gold_6326_2s.txt",
        "kfd": True,
    },
    "rx7900xtx": {
        "tools": {
            "rocm-smi": prints("rocm_smi_rx7900xtx.json"),
            "lspci": prints("lspci_ryzen_rx7900xtx.txt"),
        },
        "cpuinfo": "cpuinfo_ryzen9_5950x.txt",
        "kfd": True,
    },
    "cpu": {
        "tools": {"lspci": prints("lspci_cpu_only_matrox.txt")},
        "cpuinfo": "cpuinfo_xeon_gold_6326_2s.txt",
    },
}


def record(name: str, node: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bin_dir, proc, dev = root / "bin", root / "proc", root / "dev"
        for path in (bin_dir, proc, dev, root / "sys", root / "rocm"):
            path.mkdir()
        for tool, script in node["tools"].items():
            (bin_dir / tool).write_text(script)
            (bin_dir / tool).chmod(0o755)
        for tool in ("python3", "timeout"):
            target = os.path.realpath(sys.executable) if tool == "python3" else shutil.which(tool)
            (bin_dir / tool).symlink_to(target)
        shutil.copy(FIXTURES / node["cpuinfo"], proc / "cpuinfo")
        shutil.copy(FIXTURES / "meminfo_xeon.txt", proc / "meminfo")
        if node.get("kfd"):
            (dev / "kfd").touch()
        args = {
            "sysfs_root": str(root / "sys"),
            "proc_root": str(proc),
            "dev_root": str(dev),
            "rocm_path": str(root / "rocm"),
        }
        (root / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        env = {
            "PATH": str(bin_dir),
            "PYTHONPATH": os.pathsep.join([str(REPO / ".collections"), *sys.path]),
            "HOME": tmp,
        }
        done = subprocess.run(
            [sys.executable, "-m", MODULE, str(root / "args.json")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    facts = json.loads(done.stdout)["ansible_facts"]
    facts.update(
        {
            "architecture": "x86_64",
            "memtotal_mb": facts["animaflow_cpu"]["memory_total_mib"],
            "python": {"version": {"major": 3, "minor": 11, "micro": 2}},
        }
    )
    return facts


def main() -> int:
    for name, node in NODES.items():
        facts = record(name, node)
        (HERE / "facts" / f"{name}.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
        gpu = facts["animaflow_gpu"]
        print(name, gpu["accelerator"], gpu["count"], gpu["total_memory_mib"], gpu["driver_version"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
