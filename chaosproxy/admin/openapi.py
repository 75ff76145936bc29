"""The admin API described for its readers, generated from the declarations in `routes.py`: the
OpenAPI 3 document (`GET /openapi.json`) and the routes table of docs/admin-api.md.

Nothing here is written per route: a route's summary, parameters, body, answers, errors and
access all come from its `Route`, so the document cannot drift from what the router serves.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from chaosproxy import __version__
from chaosproxy.admin.declare import Access, Route
from chaosproxy.admin.routes import ROUTES

_ERROR = {"$ref": "#/components/responses/Error"}
_AUTH: list[dict[str, list[str]]] = [{"bearer": []}]


def _parameters(route: Route) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.path_params
    ]
    for p in route.query:
        param: dict[str, Any] = {"name": p.name, "in": "query", "required": p.required}
        param["schema"] = dict(p.schema)
        if p.description:
            param["description"] = p.description
            param["schema"].setdefault("description", p.description)
        out.append(param)
    return out


def operation(route: Route) -> dict[str, Any]:
    """One route as an OpenAPI operation; with a token set, all but the open ones need it."""
    schema = {"type": "string"} if route.content_type.startswith("text/") else {"type": "object"}
    responses: dict[str, Any] = {
        str(status): {
            "description": meaning,
            "content": {route.content_type: {"schema": schema}},
        }
        for status, meaning in route.answers.items()
    }
    if route.query or route.body is not None:
        responses["400"] = _ERROR
    if route.access is not Access.OPEN:
        responses["401"] = _ERROR
    for status in route.errors:
        responses[str(status)] = _ERROR
    responses["default"] = _ERROR
    op: dict[str, Any] = {"operationId": route.name, "summary": route.summary}
    if route.description:
        op["description"] = route.description
    if route.access is not Access.OPEN:
        op["security"] = _AUTH
    params = _parameters(route)
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {
            "required": route.body.required,
            "content": {route.body.content_type: {"schema": route.body.schema}},
        }
    op["responses"] = responses
    return op


def paths() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        out.setdefault(route.path, {})[route.method.lower()] = operation(route)
    return out


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "chaosproxy admin API", "version": __version__},
        "paths": paths(),
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


# ---------------------------------------------------------------- docs/admin-api.md

TABLE_BEGIN = "<!-- routes: generated from chaosproxy/admin/routes.py (openapi.routes_table) -->"
TABLE_END = "<!-- /routes -->"
_TOKEN = {Access.OPEN: "no", Access.READ: "yes (read)", Access.WRITE: "yes"}


def _statuses(route: Route) -> str:
    return ", ".join(f"{s} {HTTPStatus(s).phrase}" for s in (*route.answers, *route.errors))


def usage(route: Route) -> list[str]:
    """A command's arguments as usage shows them: its declared ones, else its path parameters
    in capitals (`ctl rules delete ID`)."""
    if route.command is None:
        return []
    if route.command.args:
        return route.command.args.split()
    return [p.upper() for p in route.path_params]


def routes_table() -> str:
    """The routes table of docs/admin-api.md, between its markers (a test keeps them equal)."""
    lines = [
        TABLE_BEGIN,
        "| route | what | statuses | token | `run --workers N` | from the shell |",
        "|---|---|---|---|---|---|",
    ]
    for r in ROUTES:
        shell = ""
        if r.command is not None:
            shell = f"`chaosproxy {' '.join((*r.command.words, *usage(r)))}`"
        cells = (
            f"`{r.method} {r.path}`",
            r.summary,
            _statuses(r),
            _TOKEN[r.access],
            r.workers.describe(),
            shell,
        )
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append(TABLE_END)
    return "\n".join(lines)
