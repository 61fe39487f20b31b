"""backend_versions' reading of a backend's install root and state file, on a real directory tree."""

from __future__ import annotations

import json

import pytest

from ansible_collections.animaflow.inference.plugins.module_utils.backend_versions import (
    active_version,
    installed_versions,
    read_state,
)

MARKER = ".animaflow-installed"


@pytest.fixture
def root(tmp_path):
    """llamacpp's root as an upgrade leaves it: two complete versions, one half-copied, current -> b11312."""
    root = tmp_path / "llamacpp"
    for version, complete in (("b9976", True), ("b11312", True), ("b12000", False)):
        (root / version / "bin").mkdir(parents=True)
        if complete:
            (root / version / MARKER).write_text("{}\n")
    (root / "current").symlink_to(root / "b11312")
    return root


def test_only_versions_with_the_marker_count_sorted_by_name(root):
    assert installed_versions(str(root), MARKER) == ["b11312", "b9976"]


def test_the_active_version_is_currents_target(root):
    assert active_version(str(root)) == "b11312"


def test_a_relative_current_link_reads_the_same(root):
    (root / "current").unlink()
    (root / "current").symlink_to("b9976/")
    assert active_version(str(root)) == "b9976"


def test_nothing_installed(tmp_path):
    assert installed_versions(str(tmp_path / "absent"), MARKER) == []
    assert active_version(str(tmp_path / "absent")) == ""
    assert read_state(str(tmp_path / "absent" / "state.json")) == {}


def test_the_state_file(tmp_path):
    state = {"endpoint": "http://127.0.0.11:8000/v1", "model": "tiny"}
    (tmp_path / "state.json").write_text(json.dumps(state))
    assert read_state(str(tmp_path / "state.json")) == state


@pytest.mark.parametrize(
    ("text", "words"), [("{not json", "is not valid JSON"), ("[1, 2]", "JSON list, not an object")]
)
def test_a_broken_state_file_is_named(tmp_path, text, words):
    (tmp_path / "state.json").write_text(text)
    with pytest.raises(ValueError, match=words) as error:
        read_state(str(tmp_path / "state.json"))
    assert str(tmp_path / "state.json") in str(error.value)
