"""The JSON Schema (draft 2020-12) of scenario files, for editors (YAML language server).

It mirrors the loader's rules so an editor flags the same mistakes while typing; the loader stays
the authority (it also checks regexes, CIDRs, duplicate names and fault parameter values). Fault
parameters come from each fault's own declaration (`Fault.params`), the one the loader checks.
"""

from __future__ import annotations

from typing import Any

from chaosproxy.config.includes import preset_names
from chaosproxy.config.match_spec import USER_AGENT_PRESETS

DURATION_PATTERN = r"^\s*(\d+(\.\d+)?|\.\d+)\s*(us|µs|ms|s|m|h)?\s*$"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/$defs/{name}"}


def _obj(properties: Schema, required: tuple[str, ...] = (), **extra: Any) -> Schema:
    out: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    out.update(extra)
    return out


def _doc(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description}


_DUR = _ref("duration")


def fault_params_schemas() -> dict[str, Schema]:
    """Each fault's parameter schema, from the declaration in the fault's own file."""
    from chaosproxy.faults import registry

    return {name: cls.params_schema() for name, cls in sorted(registry().items())}


def scenario_schema() -> Schema:
    """The whole schema as a JSON-ready dict."""
    faults: Schema = {
        name: {"anyOf": [params, {"type": "null"}]}
        for name, params in fault_params_schemas().items()
    }
    condition: Schema = {
        "anyOf": [
            {"type": ["string", "number"], "description": "exact value"},
            _obj({"equals": {"type": ["string", "number"]}}, ("equals",)),
            _obj({"regex": {"type": "string", "format": "regex"}}, ("regex",)),
            _obj({"present": {"type": "boolean"}}, ("present",)),
        ]
    }
    str_or_list: Schema = {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
    }
    match = _obj(
        {
            "method": _doc(str_or_list, "HTTP method (or list of methods)"),
            "methods": _doc(str_or_list, "HTTP methods"),
            "path": _doc(
                {"type": "string", "pattern": "^/"},
                "path glob: `*` matches one segment, `**` any depth",
            ),
            "path_regex": {"type": "string", "format": "regex"},
            "host": _doc({"type": "string"}, "glob on the Host header, port ignored"),
            "headers": {"type": "object", "additionalProperties": condition},
            "query": {"type": "object", "additionalProperties": condition},
            "user_agent": _doc(
                {
                    "anyOf": [
                        {"enum": list(USER_AGENT_PRESETS)},
                        {"type": "string"},
                        _obj({"regex": {"type": "string", "format": "regex"}}, ("regex",)),
                    ]
                },
                "a preset (mobile, desktop, bot), {regex: ...}, or a regex that is not a "
                "lowercase word",
            ),
            "client_ip": _doc(str_or_list, "CIDRs (single addresses allowed)"),
        }
    )
    probability: Schema = {
        "anyOf": [
            {"type": "number", "minimum": 0, "maximum": 1},
            _obj(
                {
                    "from": {"type": "number", "minimum": 0, "maximum": 1},
                    "to": {"type": "number", "minimum": 0, "maximum": 1},
                },
                ("from", "to"),
                description="ramped linearly across the phase",
            ),
        ]
    }
    when = _obj(
        {
            "inflight_above": {"type": "integer", "minimum": 0},
            "rps_above": {"type": "number", "exclusiveMinimum": 0},
            "window": _DUR,
        },
        oneOf=[{"required": ["inflight_above"]}, {"required": ["rps_above"]}],
    )
    count: Schema = {"type": "integer", "minimum": 1}
    rule = _obj(
        {
            "name": _ref("name"),
            "match": match,
            "probability": probability,
            "when": when,
            "first": _doc(count, "only the first N matching requests are faulted"),
            "every": _doc(count, "every Nth matching request is faulted"),
            "after": _doc(count, "faulted once N matching requests have passed"),
            "fault": _ref("fault"),
            "outcomes": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {"weight": {"type": "number", "exclusiveMinimum": 0}, "fault": _ref("fault")},
                    ("weight", "fault"),
                ),
            },
            "continue": _doc({"type": "boolean"}, "later matching rules apply too"),
        },
        oneOf=[{"required": ["fault"]}, {"required": ["outcomes"]}],
    )
    include: Schema = {
        "anyOf": [
            {"type": "string"},
            {
                "type": "array",
                "items": {
                    "anyOf": [
                        {"type": "string"},
                        _obj({"file": {"type": "string"}, "match": match}, ("file",)),
                    ]
                },
            },
        ],
        "description": "rule-set files, relative to this file",
    }
    preset_items: Schema = {
        "anyOf": [
            {"enum": preset_names()},
            _obj({"preset": {"enum": preset_names()}, "match": match}, ("preset",)),
        ]
    }
    presets: Schema = {
        "anyOf": [{"enum": preset_names()}, {"type": "array", "items": preset_items}],
        "description": "bundled network profiles",
    }
    rule_block: Schema = {
        "rules": {"type": ["array", "null"], "items": _ref("rule")},
        "include": include,
        "presets": presets,
    }
    phase = _obj(
        {
            "name": _ref("name"),
            "description": {"type": "string"},
            "duration": _DUR,
            **rule_block,
        },
        ("name", "duration"),
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://chaosproxy.dev/schema/scenario.json",
        "title": "chaosproxy scenario",
        "description": "A named, phased failure story replayed by chaosproxy.",
        **_obj(
            {
                "name": _ref("name"),
                "description": {"type": "string"},
                "seed": _doc({"type": "integer"}, "same seed + same request order = same faults"),
                "repeat": {
                    "anyOf": [{"type": "integer", "minimum": 1}, {"const": "forever"}],
                },
                "phases": {"type": "array", "minItems": 1, "items": phase},
                **rule_block,
                "max_duration": _doc(_DUR, "injection stops by itself after this long"),
                "max_active_faults": {"type": "integer", "minimum": 1},
                "abort_if": _obj(
                    {
                        "error_rate_above": {"type": "number", "minimum": 0, "maximum": 1},
                        "p99_above": _DUR,
                        "window": _DUR,
                    },
                    anyOf=[{"required": ["error_rate_above"]}, {"required": ["p99_above"]}],
                ),
            },
            ("name", "phases"),
        ),
        "$defs": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
            "duration": {
                "anyOf": [
                    {"type": "number", "minimum": 0},
                    {"type": "string", "pattern": DURATION_PATTERN},
                ],
                "description": "e.g. 250ms, 1.5s, 2m (a bare number is seconds)",
            },
            "fault": _obj(faults, minProperties=1),
            "rule": rule,
        },
    }


def ruleset_schema() -> Schema:
    """Schema of an included rule-set file (`rules:` plus optional name/description)."""
    full = scenario_schema()
    props = full["properties"]
    return {
        "$schema": full["$schema"],
        "title": "chaosproxy rule set",
        **_obj(
            {
                "name": props["name"],
                "description": props["description"],
                "rules": props["rules"],
                "include": props["include"],
                "presets": props["presets"],
            }
        ),
        "$defs": full["$defs"],
    }
