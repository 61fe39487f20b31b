# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The attributes every module of this collection shares (extends_documentation_fragment)."""

from __future__ import annotations


class ModuleDocFragment:
    # Full check mode, no diff: what the collection's modules all declare.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode).
    support: none
"""
