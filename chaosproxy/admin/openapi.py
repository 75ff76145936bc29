"""The admin API as an OpenAPI 3 document; a test keeps it equal to the route table."""

from __future__ import annotations

from typing import Any

from chaosproxy import __version__
from chaosproxy.observe.stats import KEEP_SECONDS

_ERROR = {"$ref": "#/components/responses/Error"}
_JSON_OK = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_AUTH: list[dict[str, list[str]]] = [{"bearer": []}]


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _op(summary: str, *, public: bool = False, **extra: Any) -> dict[str, Any]:
    """One operation; with a token set, all but the public ones (probes) need it."""
    op: dict[str, Any] = {"summary": summary, "responses": {"200": _JSON_OK, "default": _ERROR}}
    if not public:
        op["security"] = _AUTH
        op["responses"]["401"] = _ERROR
    op.update(extra)
    return op


PATHS: dict[str, dict[str, Any]] = {
    "/healthz": {"get": _op("Liveness: the admin listener answers", public=True)},
    "/readyz": {"get": _op("Readiness: the upstream is reachable (503 otherwise)", public=True)},
    "/metrics": {
        "get": {
            "summary": "Prometheus exposition",
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/scenarios": {"get": _op("Scenarios in the scenario directory, with phases and durations")},
    "/scenarios/stop": {"post": _op("Stop whatever scenario runs")},
    "/scenarios/{name}": {
        "get": _op("One scenario: phases with offsets, rules, guardrails", parameters=[_NAME]),
        "put": _op(
            "Send a scenario as YAML text (at most 256 KiB, no includes): validated with located"
            " errors (422), kept in memory under NAME (201 new, 200 replaced)",
            parameters=[_NAME],
            requestBody={
                "required": True,
                "content": {"application/yaml": {"schema": {"type": "string"}}},
            },
        ),
        "delete": _op("Forget an uploaded scenario", parameters=[_NAME]),
    },
    "/scenarios/{name}/start": {
        "post": _op(
            "Start a scenario now (409 if one runs unless replace)",
            parameters=[_NAME],
            requestBody={
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "seed": {"type": "integer"},
                                "repeat": {
                                    "oneOf": [
                                        {"type": "integer", "minimum": 1},
                                        {"const": "forever"},
                                    ]
                                },
                                "replace": {"type": "boolean"},
                                "at": {
                                    "type": "number",
                                    "description": "Unix time to start at (phases line up "
                                    "across proxies given the same instant); up to 5 s late "
                                    "is backdated, up to a day ahead",
                                },
                            },
                        }
                    }
                },
            },
        )
    },
    "/status": {
        "get": _op("Active scenario, phase, elapsed/remaining, per-rule counts, guardrails")
    },
    "/rules": {
        "get": _op("Active ad-hoc rules"),
        "post": _op(
            "Add an ad-hoc rule (same schema as a scenario rule, plus optional ttl)",
            requestBody={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "match": {"type": "object"},
                                "probability": {"type": "number"},
                                "fault": {"type": "object"},
                                "ttl": {"type": ["string", "number"]},
                            },
                        }
                    }
                },
            },
        ),
        "delete": _op("Delete every ad-hoc rule"),
    },
    "/rules/{id}": {"delete": _op("Delete one ad-hoc rule", parameters=[_ID])},
    "/reset": {"post": _op("Stop the scenario, clear ad-hoc rules, guardrail history and stats")},
    "/openapi.json": {"get": _op("This document")},
    "/stats/timeseries": {
        "get": _op(
            "Per-second requests, errors, error rate, injected count, p50/p95/p99, and "
            "Retry-After answers with the early and patient retries that followed",
            parameters=[
                _query(
                    "seconds",
                    {"type": "integer", "minimum": 1, "maximum": KEEP_SECONDS, "default": 60},
                ),
                _query("from", {"type": "integer", "description": "first Unix second"}),
                _query("to", {"type": "integer", "description": "Unix second after the last"}),
                _query("run", {"type": "string", "maxLength": 64, "description": "X-Chaos-Run"}),
                _query("histograms", {"type": "boolean"}),
            ],
        )
    },
    "/events": {
        "get": _op(
            "State changes (scenario started/stopped/finished, phase changed, rules, guardrail "
            "trips, reloads) with Unix times, after the cursor `since`",
            parameters=[
                _query("since", {"type": "integer", "minimum": 0, "default": 0}),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ],
        )
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "chaosproxy admin API", "version": __version__},
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "An error, with the request id",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["error"],
                                "properties": {
                                    "error": {
                                        "type": "object",
                                        "required": ["code", "message", "requestId"],
                                        "properties": {
                                            "code": {"type": "integer"},
                                            "message": {"type": "string"},
                                            "requestId": {"type": "string"},
                                            "details": {
                                                "description": "400: a list of {field, problem} "
                                                "objects; 422: a list of located problems "
                                                "(file:line:col: key.path: message); otherwise "
                                                "a sentence (404 for a scenario: {problem, "
                                                "available})"
                                            },
                                        },
                                    }
                                },
                            }
                        }
                    },
                }
            },
        },
    }
