"""Role argument specs against role defaults: what ansible-doc shows is what the role does.

Rules, for every role with both meta/argument_specs.yml and defaults/main.yml (read at run time, so
variables moved between roles are followed):

- Every entry point is a tasks file (tasks_from: <entry point>).
- A role with several entry points declares its options once, as the YAML anchor <role>_options,
  and every entry point aliases it: one options object (ansible-core validates each entry point
  against it; the role's tasks files all read the same variables).
- Every variable in defaults/main.yml is an option of the `main` entry point (roles without a main
  entry point are internal: their defaults also hold derived values, so only the next rules apply).
- The role owns an option named <role>_* or listed in its defaults/main.yml. An owned option has a
  value in defaults/main.yml, or says `required: true`; there is no third, undocumented state.
- An owned option's `default:` in the spec equals the value in defaults/main.yml (templated strings
  compare as strings). A literal default (no Jinja in it) of an optional option must be stated in
  the spec; a templated one may be left out (the description says where it comes from).
- An option with `choices` (at any depth) has its spec default, and its literal role default, among them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"


def _roles() -> list[str]:
    return sorted(
        p.name
        for p in ROLES.iterdir()
        if (p / "meta" / "argument_specs.yml").is_file() and (p / "defaults" / "main.yml").is_file()
    )


def _specs(role: str) -> dict[str, Any]:
    text = (ROLES / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["argument_specs"]


def _defaults(role: str) -> dict[str, Any]:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text(encoding="utf-8")) or {}


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_templated(k) or _templated(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False


def _owned(role: str, name: str, defaults: dict[str, Any]) -> bool:
    return name.startswith(f"{role}_") or name in defaults


def _all_options(specs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every top-level option of every entry point (they are one object, but do not rely on it here)."""
    merged: dict[str, dict[str, Any]] = {}
    for entry in specs.values():
        merged.update(entry.get("options") or {})
    return merged


def _walk(options: dict[str, Any], path: str = ""):
    for name, spec in (options or {}).items():
        yield f"{path}{name}", spec
        yield from _walk(spec.get("options") or {}, f"{path}{name}.")


@pytest.fixture(params=_roles())
def role(request) -> str:
    return request.param


def test_the_roles_are_found():
    assert {"backend", "llamacpp", "ollama", "sglang", "vllm"} <= set(_roles())


def test_entry_points_alias_one_options_block(role):
    specs = _specs(role)
    if len(specs) < 2:
        return
    text = (ROLES / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8")
    anchors = {
        e.anchor
        for e in yaml.parse(text)
        if isinstance(e, yaml.NodeEvent) and not isinstance(e, yaml.AliasEvent) and e.anchor
    }
    assert anchors == {f"{role}_options"}, (
        f"{role}: one named anchor, {role}_options, expected; found {anchors}"
    )

    # Composed (before construction), an alias is the anchored node itself.
    root = yaml.compose(text)
    entries = next(v for k, v in root.value if k.value == "argument_specs")
    blocks = {}
    for key, entry in entries.value:
        options = [v for k, v in entry.value if k.value == "options"]
        assert options, f"{role}: entry point {key.value} declares no options"
        blocks[key.value] = options[0]
    shared = next(iter(blocks.values()))
    assert all(b is shared for b in blocks.values()), (
        f"{role}: entry points not aliasing *{role}_options: {sorted(k for k, b in blocks.items() if b is not shared)}"
    )

    first = next(iter(specs.values()))["options"]
    differ = sorted(name for name, entry in specs.items() if entry["options"] != first)
    assert not differ, f"{role}: entry points with other options: {differ}"


def test_every_entry_point_is_a_tasks_file(role):
    missing = sorted(e for e in _specs(role) if not (ROLES / role / "tasks" / f"{e}.yml").is_file())
    assert not missing, f"{role}: entry points without a tasks file: {missing}"


def test_every_default_is_a_main_option(role):
    specs = _specs(role)
    if "main" not in specs:
        return
    undeclared = sorted(set(_defaults(role)) - set(specs["main"].get("options") or {}))
    assert not undeclared, (
        f"{role}: defaults/main.yml variables missing from the main entry point: {undeclared}"
    )


def test_every_owned_option_has_a_default_or_is_required(role):
    defaults = _defaults(role)
    missing = sorted(
        name
        for name, spec in _all_options(_specs(role)).items()
        if _owned(role, name, defaults) and name not in defaults and not spec.get("required")
    )
    assert not missing, (
        f"{role}: options with no value in defaults/main.yml and not required: true: {missing}"
    )


def test_spec_defaults_match_role_defaults(role):
    defaults = _defaults(role)
    problems = []
    for name, spec in _all_options(_specs(role)).items():
        if not _owned(role, name, defaults) or name not in defaults:
            continue
        if "default" in spec:
            if spec["default"] != defaults[name]:
                problems.append(f"{name}: spec {spec['default']!r} != defaults {defaults[name]!r}")
        elif not spec.get("required") and not _templated(defaults[name]):
            problems.append(f"{name}: literal default {defaults[name]!r} not stated in the spec")
    assert not problems, f"{role}:\n" + "\n".join(problems)


def test_choices_include_the_defaults(role):
    defaults = _defaults(role)
    problems = []
    for name, spec in _walk(_all_options(_specs(role))):
        choices = spec.get("choices")
        if not choices:
            continue
        candidates = []
        if "default" in spec:
            candidates.append(("spec", spec["default"]))
        if name in defaults and not _templated(defaults[name]):
            candidates.append(("defaults/main.yml", defaults[name]))
        for where, value in candidates:
            values = value if spec.get("type") == "list" else [value]
            bad = [v for v in values if v not in choices]
            if bad:
                problems.append(f"{name}: {where} default {bad} not in choices {choices}")
    assert not problems, f"{role}:\n" + "\n".join(problems)


def test_backend_spec_declares_what_the_backend_roles_pass():
    """ansible-core refuses a key of backend_spec the backend role's spec does not declare."""
    declared = _specs("backend")["start"]["options"]["backend_spec"]["options"]
    problems = []
    for vars_file in sorted(ROLES.glob("*/vars/main.yml")):
        role = vars_file.parts[-3]
        passed = (yaml.safe_load(vars_file.read_text(encoding="utf-8")) or {}).get(f"_{role}_spec")
        if not isinstance(passed, dict):
            continue
        problems += [f"{role}: backend_spec.{key}" for key in sorted(set(passed) - set(declared))]
        hardening = set(passed.get("hardening") or {}) - set(declared["hardening"]["options"])
        problems += [f"{role}: backend_spec.hardening.{key}" for key in sorted(hardening)]
    assert not problems, "undeclared in roles/backend/meta/argument_specs.yml:\n" + "\n".join(problems)


def test_the_node_role_documents_the_settings_roles_defaults():
    """The collection-wide settings live in roles/settings (defaults only); the node role's spec validates
    and documents them: a default stated there is the settings role's value."""
    settings = _defaults("settings") if (ROLES / "settings" / "defaults" / "main.yml").is_file() else {}
    options = _specs("node")["main"]["options"]
    stated = {
        name: spec["default"] for name, spec in options.items() if "default" in spec and name in settings
    }
    assert stated, "the node role's spec states none of the settings role's defaults"
    assert stated == {name: settings[name] for name in stated}
