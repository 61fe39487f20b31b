#!/usr/bin/python
# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Copy a binary and the shared libraries it needs (but the system's and the driver's) into a tree."""

from __future__ import annotations

import filecmp
import os
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.animaflow.inference.plugins.module_utils.shared_libs import (
    Library,
    missing,
    outside,
    parse_ldd,
    to_bundle,
)

DOCUMENTATION = r"""
---
module: bundle_libs
short_description: Put a binary and the GPU runtime libraries it links into one relocatable tree
version_added: "0.2.0"
description:
  - Runs C(ldd) on O(binary) and writes O(dest)C(/bin/<name>) plus O(dest)C(/lib/<soname>) for every
    library it needs that is neither part of the C/C++ runtime every node has (glibc, libstdc++,
    libgcc_s) nor part of the GPU driver (libcuda, libnvidia-*, the Vulkan loader) - the CUDA runtime,
    cuBLAS, rocBLAS, HIP, libgomp and the like. The tree can then be copied to nodes without the SDK.
  - Driver libraries are never bundled, since they must match the node's kernel driver.
  - The binary must find lib/ by itself, through the RUNPATH (or RPATH) C($ORIGIN/../lib), e.g. from
    CMake's C(CMAKE_INSTALL_RPATH=$ORIGIN/../lib) with C(CMAKE_BUILD_WITH_INSTALL_RPATH=ON). After
    writing the tree, the module checks with C(ldd) (without C(LD_LIBRARY_PATH)) that every bundled
    library resolves inside it, and fails naming those that do not.
  - Libraries in C(lib/) that the binary no longer needs are removed, so the tree is exact.
author:
  - AnimaFlow Inference contributors
options:
  binary:
    description: The dynamically linked executable, as the build left it.
    type: path
    required: true
  dest:
    description: Root of the tree to write; created if missing.
    type: path
    required: true
  library_path:
    description:
      - Directories where the builder keeps SDK libraries that the loader's cache does not list
        (a toolkit under /usr/local/cuda, a cuBLAS wheel). Used only to find the files to copy.
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - animaflow.inference.attributes
notes:
  - Needs C(ldd) (glibc's libc-bin) on the host.
"""

EXAMPLES = r"""
- name: Bundle llama-server with its CUDA runtime libraries
  animaflow.inference.bundle_libs:
    binary: /var/tmp/build/bin/llama-server
    dest: /var/tmp/build/bundle
    library_path: [/usr/local/cuda/lib64]
  register: bundle

- name: Fetch every file of the tree
  ansible.builtin.fetch:
    src: /var/tmp/build/bundle/{{ item }}
    dest: /srv/cache/{{ item }}
    flat: true
  loop: "{{ bundle.files }}"
"""

RETURN = r"""
files:
  description:
    - Paths of the tree's files relative to O(dest), the binary last, so that a copy made in this order
      is complete once the binary is there.
  returned: always
  type: list
  elements: str
  sample: [lib/libcublas.so.13, lib/libcudart.so.13, lib/libcublasLt.so.13, bin/llama-server]
bundled:
  description: Each library copied into lib/, with the file it was copied from.
  returned: always
  type: list
  elements: dict
  sample: [{name: libcudart.so.13, source: /usr/local/cuda-13.0/lib/libcudart.so.13}]
driver:
  description: Driver libraries the binary needs and that the node must provide.
  returned: always
  type: list
  elements: str
  sample: [libcuda.so.1]
system:
  description: C/C++ runtime libraries the binary needs, left to the node.
  returned: always
  type: list
  elements: str
  sample: [libc.so.6, libstdc++.so.6]
"""


def run_ldd(module: AnsibleModule, path: str, library_path: list[str]) -> list[Library]:
    """ldd with exactly library_path as LD_LIBRARY_PATH (none: only RUNPATH and the loader's cache count)."""
    # run_command can add variables but not remove them, so the module's own environment is set for the call.
    saved = {key: os.environ.pop(key, None) for key in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    if library_path:
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(library_path)
    try:
        rc, out, err = module.run_command(
            [module.get_bin_path("ldd", required=True), path], environ_update={"LC_ALL": "C"}, check_rc=False
        )
    finally:
        os.environ.pop("LD_LIBRARY_PATH", None)
        os.environ.update({key: value for key, value in saved.items() if value is not None})
    # ldd exits 1 for a static binary ("not a dynamic executable"): nothing to bundle then.
    if rc != 0 and "not a dynamic executable" not in out + err:
        module.fail_json(msg=f"ldd {path} failed ({rc}): {(err or out).strip()}")
    return parse_ldd(out)


NOT_FOUND = "not found"


def same(source: str, target: str) -> bool:
    return os.path.isfile(target) and filecmp.cmp(source, target, shallow=False)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "binary": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "library_path": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    binary = module.params["binary"]
    dest = module.params["dest"]
    if not os.path.isfile(binary):
        module.fail_json(msg=f"{binary} does not exist: build it first (nothing to bundle).")

    libraries = run_ldd(module, binary, module.params["library_path"])
    chosen = [lib for lib in to_bundle(libraries) if lib.path is not None]
    unresolved = [lib.name for lib in missing(libraries) if lib.kind == "bundle"]
    if unresolved:
        module.fail_json(
            msg=(
                f"{binary} needs {', '.join(unresolved)}, which ldd does not find on this builder: there is"
                " nothing to bundle from. Fix: add the directory that holds them (the SDK's lib or lib64) to"
                " library_path (the llamacpp role: llamacpp_build_library_path)."
            ),
            libraries=[lib.__dict__ for lib in libraries],
        )

    name = os.path.basename(binary)
    # The binary last: whoever copies the tree in this order can take the binary's presence as "complete".
    plan = {f"lib/{lib.name}": os.path.realpath(str(lib.path)) for lib in chosen} | {f"bin/{name}": binary}
    lib_dir = os.path.join(dest, "lib")
    stale = sorted(
        os.path.join(lib_dir, entry)
        for entry in (os.listdir(lib_dir) if os.path.isdir(lib_dir) else [])
        if f"lib/{entry}" not in plan
    )
    pending = {rel: src for rel, src in plan.items() if not same(src, os.path.join(dest, rel))}
    changed = bool(pending or stale)
    result = {
        "changed": changed,
        "files": list(plan),
        "bundled": [{"name": lib.name, "source": plan[f"lib/{lib.name}"]} for lib in chosen],
        "driver": [lib.name for lib in libraries if lib.kind == "driver"],
        "system": [lib.name for lib in libraries if lib.kind == "system"],
    }
    if module.check_mode:
        module.exit_json(**result)

    for path in stale:
        os.remove(path)
    for rel, src in pending.items():
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        shutil.copyfile(src, target + ".part")
        os.chmod(target + ".part", 0o755 if rel.startswith("bin/") else 0o644)
        os.replace(target + ".part", target)

    # The proof that the tree serves itself: no LD_LIBRARY_PATH, so only the RUNPATH can point into lib/.
    if chosen:
        placed = run_ldd(module, os.path.join(dest, "bin", name), [])
        strays = outside(placed, lib_dir) + [lib for lib in missing(placed) if lib.kind == "bundle"]
        if strays:
            module.fail_json(
                msg=(
                    f"In the tree {dest}, {', '.join(f'{lib.name} ({lib.path or NOT_FOUND})' for lib in strays)}"
                    f" {'does' if len(strays) == 1 else 'do'} not resolve to {lib_dir}: {name} lacks the RUNPATH"
                    " $ORIGIN/../lib, or a bundled library that needs it has a RUNPATH elsewhere. Fix: link with"
                    " CMAKE_INSTALL_RPATH=$ORIGIN/../lib and CMAKE_BUILD_WITH_INSTALL_RPATH=ON (-Wl,-rpath,'$ORIGIN/../lib')."
                ),
                **result,
            )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
