#!/usr/bin/python
# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""Fail, naming them, when a binary's shared libraries are not all found on this node."""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.animaflow.inference.plugins.module_utils.shared_libs import (
    missing,
    missing_message,
    parse_ldd,
)

DOCUMENTATION = r"""
---
module: check_libs
short_description: Check that a binary finds every shared library it needs on this node
version_added: "0.2.0"
description:
  - Runs C(ldd) on O(path) the way the service will start it (without C(LD_LIBRARY_PATH)) and fails
    when a library is C(not found), naming each one and the fix.
  - Libraries of the GPU driver (libcuda, libnvidia-*, the Vulkan loader) are never bundled with a
    build. When one is missing, the message says the node lacks the driver.
  - Read-only; safe in check mode.
author:
  - AnimaFlow Inference contributors
options:
  path:
    description: The installed executable.
    type: path
    required: true
extends_documentation_fragment:
  - animaflow.inference.attributes
notes:
  - Needs C(ldd) (glibc's libc-bin) on the node.
"""

EXAMPLES = r"""
- name: Check llama-server finds its CUDA runtime in the installed tree
  animaflow.inference.check_libs:
    path: /opt/animaflow/llamacpp/b11312/bin/llama-server
"""

RETURN = r"""
libraries:
  description: Each library ldd lists, with the file it resolves to (null when not found).
  returned: always
  type: list
  elements: dict
  sample: [{name: libcublas.so.13, path: /opt/animaflow/llamacpp/b11312/bin/../lib/libcublas.so.13}]
missing:
  description: Names of the libraries ldd does not find.
  returned: always
  type: list
  elements: str
  sample: []
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={"path": {"type": "path", "required": True}}, supports_check_mode=True
    )
    path = module.params["path"]
    if not os.path.isfile(path):
        module.fail_json(msg=f"{path} does not exist: nothing to check (was the build copied?).")
    # As systemd starts the unit: neither LD_LIBRARY_PATH nor LD_PRELOAD may hide a missing library.
    for key in ("LD_LIBRARY_PATH", "LD_PRELOAD"):
        os.environ.pop(key, None)
    rc, out, err = module.run_command(
        [module.get_bin_path("ldd", required=True), path], environ_update={"LC_ALL": "C"}, check_rc=False
    )
    if rc != 0 and "not a dynamic executable" not in out + err:
        module.fail_json(msg=f"ldd {path} failed ({rc}): {(err or out).strip()}")
    libraries = parse_ldd(out)
    result = {
        "changed": False,
        "libraries": [{"name": lib.name, "path": lib.path} for lib in libraries],
        "missing": [lib.name for lib in missing(libraries)],
    }
    message = missing_message(path, libraries)
    if message:
        module.fail_json(msg=message, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
