"""controller_file writes on the controller from the worker (the status report's file), atomically,
and changes nothing in check mode."""

from __future__ import annotations

import stat

from playbook_runner import run_on_localhost


def write(dest, content, *args):
    return run_on_localhost(
        "animaflow.inference.controller_file", {"dest": str(dest), "content": content}, *args
    )


def test_writes_creates_the_directory_and_reports_changes(tmp_path):
    dest = tmp_path / "status" / "node-1.json"
    first = write(dest, '{"a": 1}\n')
    assert first.returncode == 0, first.stdout + first.stderr
    assert "CHANGED" in first.stdout
    assert dest.read_text() == '{"a": 1}\n'
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    again = write(dest, '{"a": 1}\n')
    assert again.returncode == 0 and "SUCCESS" in again.stdout  # same content: unchanged
    assert [p.name for p in dest.parent.iterdir()] == ["node-1.json"]  # no temporary file left


def test_check_mode_writes_nothing(tmp_path):
    dest = tmp_path / "status" / "node-1.json"
    done = write(dest, "{}\n", "--check")
    assert done.returncode == 0 and "CHANGED" in done.stdout, done.stdout + done.stderr
    assert not dest.parent.exists()


def test_an_unwritable_place_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    done = write(tmp_path / "file" / "node-1.json", "{}\n")
    assert done.returncode != 0
    assert f"cannot write {tmp_path / 'file' / 'node-1.json'} on the controller" in done.stdout
