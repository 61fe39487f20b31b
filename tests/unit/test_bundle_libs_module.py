"""bundle_libs and check_libs run as Ansible runs them, on real ELF binaries built here with gcc: a
program linking its own shared library (as llama-server links cudart and cuBLAS), with and without
the RUNPATH $ORIGIN/../lib, and one that also needs a library named like the NVIDIA driver's."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from module_runner import run_module


def gcc(*args: str | Path) -> None:
    assert shutil.which("gcc"), "gcc is not on PATH: install it (apt-get install -y gcc); builds need it too"
    subprocess.run(["gcc", *map(str, args)], check=True, capture_output=True)


@pytest.fixture
def sdk(tmp_path: Path) -> Path:
    """A stand-in SDK: libanima.so.1 (plays cudart) and libcuda.so.1 (plays the driver), in sdk/lib."""
    lib = tmp_path / "sdk" / "lib"
    lib.mkdir(parents=True)
    (tmp_path / "anima.c").write_text("int anima(void) { return 7; }\n")
    (tmp_path / "cuda.c").write_text("int cuInit(unsigned f) { return (int)f; }\n")
    gcc("-shared", "-fPIC", "-Wl,-soname,libanima.so.1", "-o", lib / "libanima.so.1", tmp_path / "anima.c")
    gcc("-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", lib / "libcuda.so.1", tmp_path / "cuda.c")
    return lib


def program(tmp_path: Path, sdk: Path, name: str, rpath: bool = True, driver: bool = False) -> Path:
    source = tmp_path / f"{name}.c"
    source.write_text(
        "#include <stdio.h>\nint anima(void);\nint cuInit(unsigned);\n"
        f'int main(void) {{ printf("%d\\n", anima(){" + cuInit(0)" if driver else ""}); return 0; }}\n'
    )
    binary = tmp_path / name / "build" / "bin" / "llama-server"
    binary.parent.mkdir(parents=True)
    libs = [f"-L{sdk}", "-l:libanima.so.1"] + (["-l:libcuda.so.1"] if driver else [])
    gcc("-o", binary, source, *libs, *(["-Wl,-rpath,$ORIGIN/../lib"] if rpath else []))
    return binary


def module(name: str, tmp_path: Path, **args: Any) -> dict[str, Any]:
    done = run_module(name, tmp_path, args)
    return json.loads(done.stdout)


def test_bundles_the_sdk_library_and_the_tree_runs_alone(tmp_path: Path, sdk: Path) -> None:
    binary = program(tmp_path, sdk, "ok")
    dest = tmp_path / "bundle"
    result = module("bundle_libs", tmp_path, binary=str(binary), dest=str(dest), library_path=[str(sdk)])
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert result["files"] == ["lib/libanima.so.1", "bin/llama-server"]
    assert result["bundled"] == [{"name": "libanima.so.1", "source": str(sdk / "libanima.so.1")}]
    assert "libc.so.6" in result["system"] and result["driver"] == []
    # The SDK is gone, as on a node: the tree still starts.
    shutil.rmtree(sdk.parent)
    run = subprocess.run([str(dest / "bin" / "llama-server")], capture_output=True, text=True, check=False)
    assert (run.returncode, run.stdout) == (0, "7\n")
    checked = module("check_libs", tmp_path, path=str(dest / "bin" / "llama-server"))
    assert not checked.get("failed") and checked["missing"] == [] and checked["changed"] is False


def test_second_run_changes_nothing_and_check_mode_writes_nothing(tmp_path: Path, sdk: Path) -> None:
    binary = program(tmp_path, sdk, "idem")
    dest = tmp_path / "bundle"
    args = {"binary": str(binary), "dest": str(dest), "library_path": [str(sdk)]}
    planned = module("bundle_libs", tmp_path, **args, _ansible_check_mode=True)
    assert planned["changed"] is True and not dest.exists()
    assert module("bundle_libs", tmp_path, **args)["changed"] is True
    assert module("bundle_libs", tmp_path, **args)["changed"] is False
    # A library the binary no longer needs leaves the tree.
    (dest / "lib" / "libold.so.1").write_text("stale")
    assert module("bundle_libs", tmp_path, **args)["changed"] is True
    assert sorted(p.name for p in (dest / "lib").iterdir()) == ["libanima.so.1"]


def test_fails_when_the_binary_lacks_the_runpath(tmp_path: Path, sdk: Path) -> None:
    binary = program(tmp_path, sdk, "norpath", rpath=False)
    result = module(
        "bundle_libs", tmp_path, binary=str(binary), dest=str(tmp_path / "b"), library_path=[str(sdk)]
    )
    assert result["failed"] is True
    assert "libanima.so.1 (not found) does not resolve to" in result["msg"]
    assert "CMAKE_INSTALL_RPATH=$ORIGIN/../lib" in result["msg"]


def test_fails_naming_a_library_the_builder_does_not_find(tmp_path: Path, sdk: Path) -> None:
    binary = program(tmp_path, sdk, "nopath")
    result = module("bundle_libs", tmp_path, binary=str(binary), dest=str(tmp_path / "b"))
    assert result["failed"] is True
    assert result["msg"].startswith(f"{binary} needs libanima.so.1, which ldd does not find on this builder")
    assert "llamacpp_build_library_path" in result["msg"]


def test_driver_library_stays_with_the_node(tmp_path: Path, sdk: Path) -> None:
    binary = program(tmp_path, sdk, "driver", driver=True)
    dest = tmp_path / "bundle"
    result = module("bundle_libs", tmp_path, binary=str(binary), dest=str(dest), library_path=[str(sdk)])
    assert not result.get("failed"), result
    assert result["driver"] == ["libcuda.so.1"]
    assert sorted(p.name for p in (dest / "lib").iterdir()) == ["libanima.so.1"]
    # Without the driver on the "node", check_libs says the driver is missing, not the bundle.
    (sdk / "libcuda.so.1").unlink()
    checked = module("check_libs", tmp_path, path=str(dest / "bin" / "llama-server"))
    assert checked["failed"] is True and checked["missing"] == ["libcuda.so.1"]
    assert checked["msg"].startswith("libcuda.so.1 comes from the GPU driver")


def test_check_libs_names_the_libraries_an_unbundled_copy_misses(tmp_path: Path, sdk: Path) -> None:
    binary = program(tmp_path, sdk, "alone")
    shutil.rmtree(sdk.parent)
    checked = module("check_libs", tmp_path, path=str(binary))
    assert checked["failed"] is True and checked["missing"] == ["libanima.so.1"]
    assert checked["msg"].startswith(f"{binary} cannot load libanima.so.1 on this node (ldd: not found)")


def test_check_libs_on_a_missing_file(tmp_path: Path) -> None:
    checked = module("check_libs", tmp_path, path=str(tmp_path / "nothing"))
    assert checked["failed"] is True and "does not exist" in checked["msg"]
