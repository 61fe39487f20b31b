"""unit_facts' parsers against recorded systemctl output (tests/unit/fixtures/systemctl/README.md)."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.animaflow.inference.plugins.module_utils.systemd_units import (
    merge,
    parse_list_unit_files,
    parse_list_units,
    parse_show,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "systemctl"


def _read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _entry(name: str, state: str, status: str) -> dict[str, str]:
    return {"name": name, "state": state, "status": status, "source": "systemd"}


def test_loaded_units_running_failed_and_transient():
    assert parse_list_units(_read("list-units.txt")) == {
        "animaflow-llamacpp-tune-t1.service": _entry(
            "animaflow-llamacpp-tune-t1.service", "running", "active"
        ),
        "animaflow-llamacpp.service": _entry("animaflow-llamacpp.service", "running", "active"),
        "animaflow-ollama.service": _entry("animaflow-ollama.service", "stopped", "failed"),
    }


def test_unit_files_with_the_vendor_preset_column():
    assert parse_list_unit_files(_read("list-unit-files.txt")) == {
        "animaflow-llamacpp-tune-t1.service": "transient",
        "animaflow-llamacpp.service": "enabled",
        "animaflow-ollama.service": "enabled",
        "animaflow-vllm.service": "static",
    }


def test_show_reads_one_block_per_unit():
    assert parse_show(_read("show.txt")) == {
        "animaflow-vllm.service": "inactive",
        "animaflow-llamacpp.service": "active",
    }


def test_merged_as_service_facts_reported_them_on_that_node():
    loaded = parse_list_units(_read("list-units.txt"))
    files = parse_list_unit_files(_read("list-unit-files.txt"))
    assert merge(loaded, files, parse_show(_read("show.txt"))) == {
        "animaflow-llamacpp-tune-t1.service": _entry(
            "animaflow-llamacpp-tune-t1.service", "running", "transient"
        ),
        "animaflow-llamacpp.service": _entry("animaflow-llamacpp.service", "running", "enabled"),
        # A failed unit keeps "failed" over its unit file's "enabled": what the roles must see.
        "animaflow-ollama.service": _entry("animaflow-ollama.service", "stopped", "failed"),
        # Not loaded: its ActiveState from `systemctl show`.
        "animaflow-vllm.service": _entry("animaflow-vllm.service", "inactive", "static"),
    }


def test_nothing_matches():
    assert merge(parse_list_units(""), parse_list_unit_files(""), parse_show("")) == {}


def test_a_unit_file_systemd_could_not_show_is_unknown():
    assert merge({}, {"animaflow-sglang.service": "disabled"}, {}) == {
        "animaflow-sglang.service": _entry("animaflow-sglang.service", "unknown", "disabled")
    }
