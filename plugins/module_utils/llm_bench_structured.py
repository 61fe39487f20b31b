# Copyright: AnimaFlow Inference contributors
# Apache-2.0 (see galaxy.yml)
"""The structured-output workload: a fixed JSON schema, the prompt asking for it, and its validator.

Every request of the `structured` workload sends OpenAI's response_format json_schema (strict) with
SCHEMA, the record a pipeline bot would file for a shot, and every reply is parsed and checked
against it. The validator covers only the JSON Schema keywords in SUPPORTED_KEYWORDS, the ones
SCHEMA uses; unsupported_keywords() names any other, so a schema grown past the validator fails
loudly instead of passing unchecked. Standard library only (module_utils run on the nodes).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

SCHEMA_NAME = "shot_record"

# Every property required and additionalProperties false: OpenAI's strict mode demands both. The
# string lengths and the list bound keep a whole record under ~300 tokens for any tokenizer that
# has single-character tokens, so STRUCTURED_MIN_OUTPUT_TOKENS leaves it room to finish.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "shot_id", "sequence", "frame_start", "frame_end", "status", "assets", "description", "needs_review",
    ],
    "properties": {
        "shot_id": {"type": "string", "minLength": 1, "maxLength": 16},
        "sequence": {"type": "string", "minLength": 1, "maxLength": 16},
        "frame_start": {"type": "integer", "minimum": 0, "maximum": 99999},
        "frame_end": {"type": "integer", "minimum": 0, "maximum": 99999},
        "status": {"type": "string", "enum": ["layout", "animation", "lighting", "comp", "final"]},
        "assets": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 24},
            "minItems": 1,
            "maxItems": 4,
        },
        "description": {"type": "string", "maxLength": 80},
        "needs_review": {"type": "boolean"},
    },
}  # fmt: skip

# max_tokens below this would cut most records; output_tokens is only a cap for this workload.
STRUCTURED_MIN_OUTPUT_TOKENS = 256

# After the request's tag ("Request <run>-<n>: "): the fields named, since the server's grammar
# constrains the reply's form but the model still has to know what to put in it.
STRUCTURED_PROMPT = (
    "describe this shot of an animated film as a JSON shot record with shot_id, sequence, "
    "frame_start, frame_end, status (one of layout, animation, lighting, comp, final), assets "
    "(1 to 4 asset names), description (one short sentence) and needs_review."
)

SUPPORTED_KEYWORDS = frozenset(
    (
        "type", "properties", "required", "additionalProperties", "enum", "items",
        "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength",
    )
)  # fmt: skip
# Annotations: they say nothing about validity.
_IGNORED_KEYWORDS = frozenset(("title", "description", "$schema"))

CUT_AT_MAX_TOKENS = "cut at max_tokens"
_MAX_REASON = 120


def response_format() -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": SCHEMA}}


def schema_sha256() -> str:
    """Of the canonical JSON (sorted keys, no spaces): the same schema gives the same digest anywhere."""
    canonical = json.dumps(SCHEMA, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def unsupported_keywords(schema: dict[str, Any], path: str = "$") -> list[str]:
    """Keywords of `schema` this validator would not check, as 'path: keyword'."""
    found = [f"{path}: {key}" for key in schema if key not in SUPPORTED_KEYWORDS | _IGNORED_KEYWORDS]
    if isinstance(schema.get("additionalProperties"), dict):
        found.append(f"{path}: additionalProperties as a schema")
    for name, sub in (schema.get("properties") or {}).items():
        found += unsupported_keywords(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += unsupported_keywords(schema["items"], f"{path}[]")
    return found


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _is_type(value: Any, kind: str) -> bool:
    actual = _json_type(value)
    if kind == "number":
        return actual in ("integer", "number")
    if kind == "integer":
        # JSON Schema: a number with a zero fractional part (1.0) is an integer.
        return actual == "integer" or (actual == "number" and value.is_integer())
    return actual == kind


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1 (Python says it is), 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 24 else text[:21] + "..."


def validate(instance: Any, schema: dict[str, Any], path: str = "$") -> str | None:
    """The first way `instance` breaks `schema` (keywords in SUPPORTED_KEYWORDS), or None if it holds."""
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not any(_is_type(instance, k) for k in kinds):
            return f"{path}: expected {'/'.join(kinds)}, got {_json_type(instance)}"
    if "enum" in schema and not any(_same(instance, option) for option in schema["enum"]):
        return f"{path}: {_short(instance)} is not one of the enum"
    if isinstance(instance, str):
        if "minLength" in schema and len(instance) < schema["minLength"]:
            return f"{path}: shorter than minLength {schema['minLength']}"
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            return f"{path}: longer than maxLength {schema['maxLength']} ({len(instance)} characters)"
    if _json_type(instance) in ("integer", "number"):
        if "minimum" in schema and instance < schema["minimum"]:
            return f"{path}: {instance} below minimum {schema['minimum']}"
        if "maximum" in schema and instance > schema["maximum"]:
            return f"{path}: {instance} above maximum {schema['maximum']}"
    if isinstance(instance, list):
        return _validate_array(instance, schema, path)
    if isinstance(instance, dict):
        return _validate_object(instance, schema, path)
    return None


def _validate_array(instance: list[Any], schema: dict[str, Any], path: str) -> str | None:
    if "minItems" in schema and len(instance) < schema["minItems"]:
        return f"{path}: {len(instance)} items, fewer than minItems {schema['minItems']}"
    if "maxItems" in schema and len(instance) > schema["maxItems"]:
        return f"{path}: {len(instance)} items, more than maxItems {schema['maxItems']}"
    items = schema.get("items")
    if isinstance(items, dict):
        for number, item in enumerate(instance):
            reason = validate(item, items, f"{path}[{number}]")
            if reason:
                return reason
    return None


def _validate_object(instance: dict[str, Any], schema: dict[str, Any], path: str) -> str | None:
    missing = [name for name in schema.get("required", []) if name not in instance]
    if missing:
        return f"{path}: missing required {', '.join(missing)}"
    properties = schema.get("properties") or {}
    if schema.get("additionalProperties", True) is False:
        extra = sorted(name for name in instance if name not in properties)
        if extra:
            return f"{path}: additional property {', '.join(extra)}"
    for name, sub in properties.items():
        if name in instance:
            reason = validate(instance[name], sub, f"{path}.{name}")
            if reason:
                return reason
    return None


def _no_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not.
    raise ValueError(f"{name} is not JSON")


def check_reply(
    content: str | None, finish_reason: str | None, schema: dict[str, Any] = SCHEMA
) -> str | None:
    """Why a reply's answer text is not a valid record (a short reason), or None when it is."""
    if finish_reason == "length":
        return CUT_AT_MAX_TOKENS
    if not content or not content.strip():
        return "no answer text"
    try:
        document = json.loads(content, parse_constant=_no_constant)
    except ValueError as error:
        detail = f"{error.msg} at character {error.pos}" if isinstance(error, json.JSONDecodeError) else error
        return f"not JSON: {detail}"[:_MAX_REASON]
    reason = validate(document, schema)
    return reason[:_MAX_REASON] if reason else None
