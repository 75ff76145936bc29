"""The JSON Schema (draft 2020-12) of experiment files, for editors and CI linters.

Its property names come from the reader's own key tables (`spec.py`, `spec_checks.py`), so the
two cannot drift; the reader stays the authority (it also checks phases against the scenario
and `${VAR}`s).
"""

from __future__ import annotations

from typing import Any

from chaosproxy.config.schema import DURATION_PATTERN
from chaosproxy.experiment import model, spec, spec_checks

Schema = dict[str, Any]

_DUR: Schema = {
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}]
}
_TEXT: Schema = {"type": "string", "minLength": 1}
_URL: Schema = {"type": "string", "pattern": r"^(https?://|\$\{)"}
# `chaosproxy run` flags the runner passes itself, as `--flag` or `--flag=value`
_RUNNER_FLAG = "^(" + "|".join(model.RUNNER_FLAGS) + ")(=.*)?$"


def _obj(props: Schema, keys: tuple[str, ...], required: tuple[str, ...] = ()) -> Schema:
    assert set(props) == set(keys), f"schema and reader disagree: {set(props) ^ set(keys)}"
    out: Schema = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    return out


def experiment_schema() -> Schema:
    request = _obj(
        {
            "path": {"type": "string", "pattern": "^/"},
            "method": {"enum": list(model.METHODS)},
            "weight": {"type": "integer", "minimum": 1},
            "user_agent": {
                "type": "string",
                "description": "mobile | desktop | bot, or the User-Agent text itself",
            },
            "headers": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
            "body": {"type": "string"},
            "name": _TEXT,
            "kind": {"enum": list(model.GRPC_KINDS), "default": "unary"},
            "messages": {"type": "integer", "minimum": 1, "maximum": model.MAX_MESSAGES},
        },
        spec.REQUEST_KEYS,
        ("path",),
    )
    stage = _obj(
        {
            "phase": _TEXT,
            "users": {"type": "integer", "minimum": 0},
            "spawn_rate": {"type": "number", "exclusiveMinimum": 0},
        },
        spec.STAGE_KEYS,
        ("phase", "users"),
    )
    load = _obj(
        {
            "users": {"type": "integer", "minimum": 1, "default": 10},
            "spawn_rate": {"type": "number", "exclusiveMinimum": 0, "default": 10},
            "shape": {"enum": list(model.SHAPES), "default": "steady"},
            "stages": {"type": "array", "items": stage},
            "base_users": {"type": "integer", "minimum": 1},
            "wait": _DUR,
            "locustfile": {"type": "string", "description": "default, grpc, or a path"},
            "requests": {"type": "array", "items": request, "minItems": 1},
            "settle": _DUR,
            "cooldown": _DUR,
        },
        spec.LOAD_KEYS,
    )
    bound: Schema = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}]}
    # against the control group a share's bound is a difference: it may be negative
    difference: Schema = {"anyOf": [{"type": "number", "minimum": -1}, {"type": "string"}]}
    check = _obj(
        {
            "name": _TEXT,
            "metric": {"enum": list(model.METRICS)},
            "source": {"enum": list(model.SOURCES), "default": "client"},
            "during_phase": _TEXT,
            "after_phase": _TEXT,
            "compare_to": _TEXT,
            "below": difference,
            "above": difference,
            "within": _DUR,
            "for": _DUR,
            "min_samples": {"type": "integer", "minimum": 1, "default": model.DEFAULT_MIN_SAMPLES},
            "halt": {"type": "boolean"},
            "prometheus": _obj(
                {"url": _URL, "query": _TEXT}, spec_checks.PROMETHEUS_KEYS, ("url", "query")
            ),
        },
        spec_checks.CHECK_KEYS,
        ("name",),
    )
    check["oneOf"] = [{"required": ["during_phase"]}, {"required": ["after_phase", "within"]}]
    # A Prometheus check judges what its query returns: no metric; every other check has one.
    check["if"] = {"required": ["source"], "properties": {"source": {"const": "prometheus"}}}
    check["then"] = {"required": ["prometheus"], "not": {"required": ["metric"]}}
    check["allOf"] = [
        {
            "if": {
                "not": {
                    "required": ["compare_to"],
                    "properties": {"compare_to": {"const": "control"}},
                }
            },
            "then": {"properties": {"below": bound, "above": bound}},
        }
    ]
    check["else"] = {"required": ["metric"]}
    top = _obj(
        {
            "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$"},
            "description": {"type": "string"},
            "scenario": {"type": "string", "description": "a bundled name or a path"},
            "seed": {"type": "integer"},
            "proxy": _obj(
                {
                    "upstream": _URL,
                    "listen": {"type": "string", "description": "HOST:PORT it serves"},
                    "admin": {
                        "type": "string",
                        "description": "HOST:PORT of its admin API (/metrics for Prometheus); "
                        "default loopback, a free port",
                    },
                    "args": {
                        "type": "array",
                        "items": {"type": "string", "not": {"pattern": _RUNNER_FLAG}},
                        "description": "more `chaosproxy run` flags (not the runner's own: "
                        + ", ".join(model.RUNNER_FLAGS)
                        + ")",
                    },
                },
                spec.PROXY_KEYS,
                ("upstream",),
            ),
            "admin": {"anyOf": [_TEXT, {"type": "array", "items": _TEXT, "minItems": 1}]},
            "target": _URL,
            "load": load,
            "checks": {"type": "array", "items": check, "minItems": 1},
            "baseline": _obj(
                {
                    "phase": _TEXT,
                    "error_rate_above": {"type": "number", "minimum": 0, "maximum": 1},
                },
                spec_checks.BASELINE_KEYS,
            ),
            "confidence": {
                "type": "number",
                "minimum": 0.5,
                "maximum": 0.9999,
                "description": "each side of the interval a check is decided on (0.95)",
            },
            "halt_false_alarm": {
                "type": "number",
                "minimum": 0.0001,
                "maximum": 0.5,
                "description": "chance of a false halt over a whole phase (0.01)",
            },
        },
        spec.EXPERIMENT_KEYS,
        ("name", "scenario", "checks"),
    )
    top["oneOf"] = [{"required": ["proxy"]}, {"required": ["admin", "target"]}]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "chaosproxy-experiment.schema.json",
        "title": "chaosproxy experiment",
        **top,
    }
