"""The JSON Schema (draft 2020-12) of scenario files, for editors (YAML language server).

It mirrors the loader's rules so an editor flags the same mistakes while typing; the loader stays
the authority (it also checks regexes, CIDRs, duplicate names and fault parameter values). The
keys of every mapping come from their declaration (`keys.py`), the one the loader reads with;
fault parameters from each fault's own (`Fault.params`). The `match:` grammar is written here.
"""

from __future__ import annotations

from typing import Any

from chaosproxy.config.includes import preset_names
from chaosproxy.config.keys import RULE, RULESET, SCENARIO
from chaosproxy.config.located import MAX_NAME, NAME
from chaosproxy.config.match_spec import COHORT_SCHEMA, USER_AGENT_PRESETS

DURATION_PATTERN = r"^\s*(\d+(\.\d+)?|\.\d+)\s*(us|µs|ms|s|m|h)?\s*$"

Schema = dict[str, Any]


def _obj(properties: Schema, required: tuple[str, ...] = (), **extra: Any) -> Schema:
    out: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    out.update(extra)
    return out


def _doc(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description}


def fault_params_schemas() -> dict[str, Schema]:
    """Each fault's parameter schema, from the declaration in the fault's own file."""
    from chaosproxy.faults import registry

    return {name: cls.params_schema() for name, cls in sorted(registry().items())}


def tcp_fault_params_schemas() -> dict[str, Schema]:
    """The TCP faults' parameter schemas (their own registry: docs/tcp.md)."""
    from chaosproxy.faults.tcp import registry

    return {name: cls.params_schema() for name, cls in sorted(registry().items())}


def scenario_schema() -> Schema:
    """The whole schema as a JSON-ready dict."""
    faults: Schema = {
        name: {"anyOf": [params, {"type": "null"}]}
        for name, params in fault_params_schemas().items()
    }
    tcp_faults: Schema = {
        name: {"anyOf": [params, {"type": "null"}]}
        for name, params in tcp_fault_params_schemas().items()
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
            "cohort": COHORT_SCHEMA,
            "tcp": _doc(
                {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,64}$"},
                "a TCP proxy's name (--tcp NAME=...): the rule acts on its connections and "
                "takes TCP faults (docs/tcp.md)",
            ),
            "grpc": _doc(
                _obj(
                    {"service": {"type": "string"}, "method": {"type": "string"}},
                    (),
                    minProperties=1,
                ),
                "gRPC calls (content-type application/grpc*) to this service and/or method "
                "(globs on /pkg.Service/Method)",
            ),
        }
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://chaosproxy.dev/schema/scenario.json",
        "title": "chaosproxy scenario",
        **SCENARIO.schema(),
        "$defs": {
            "name": {"type": "string", "pattern": NAME.pattern, "maxLength": MAX_NAME},
            "duration": {
                "anyOf": [
                    {"type": "number", "minimum": 0},
                    {"type": "string", "pattern": DURATION_PATTERN},
                ],
                "description": "e.g. 250ms, 1.5s, 2m (a bare number is seconds)",
            },
            # HTTP faults, or a TCP proxy's (a rule with match.tcp); the loader pairs them.
            "fault": {"anyOf": [_obj(faults, minProperties=1), _obj(tcp_faults, minProperties=1)]},
            "rule": RULE.schema(),
            "match": match,
            "preset": {"enum": preset_names()},
        },
    }


def ruleset_schema() -> Schema:
    """Schema of an included rule-set file (`rules:` plus optional name/description)."""
    full = scenario_schema()
    return {
        "$schema": full["$schema"],
        "title": "chaosproxy rule set",
        **RULESET.schema(),
        "$defs": full["$defs"],
    }
