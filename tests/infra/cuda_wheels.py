"""Install the cuBLAS wheel that CUDA builds here link against, and print its nvidia/cu13 directory.

This machine kind's CUDA 13 toolkit has nvcc and cudart but no cuBLAS; PyPI's nvidia-cublas wheel has
its headers and libcublas.so.13/libcublasLt.so.13 (about 570 MB unpacked, seconds to install from PyPI).
Pinned to the 13.0 release line of the toolkit (nvcc V13.0.88).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CUBLAS = "nvidia-cublas==13.0.2.14"


def cublas_root() -> Path:
    target = REPO / ".cache" / "cuda-wheels" / CUBLAS.replace("==", "-")
    root = target / "nvidia" / "cu13"
    if not (root / "lib" / "libcublasLt.so.13").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), CUBLAS],
            check=True,
        )
    return root


if __name__ == "__main__":
    print(cublas_root())
