"""The admin API's routes, each declared once (`declare.Route`), in the order the router tries them.

The single proxy's app (`app.py`) and `run --workers N`'s relay (`workers/relay.py`) serve
exactly `ROUTES`; `openapi.py` documents them (and writes docs/admin-api.md's routes table);
`AdminClient` and `chaosproxy ctl` call them by these constants, never by a path of their own.
A new route is one `_declare(...)` here, its handler in `handlers.py` (named as the route), and,
under `--workers`, the `Merge` its policy names (tests/admin/test_routes.py checks each part).
"""

from __future__ import annotations

from chaosproxy.admin.declare import (
    Access,
    Body,
    Command,
    Fanout,
    Merge,
    Param,
    Route,
    Workers,
)
from chaosproxy.observe.stats import KEEP_SECONDS

MAX_UPLOAD = 256 * 1024  # bytes of scenario YAML accepted by PUT /scenarios/{name}
RUN_ID = {"type": "string", "maxLength": 64, "description": "the X-Chaos-Run header's value"}

ROUTES: list[Route] = []


def _declare(route: Route) -> Route:
    if any((r.method, r.path) == (route.method, route.path) for r in ROUTES):
        raise ValueError(f"{route.method} {route.path} declared twice")
    ROUTES.append(route)
    return route


# ---------------------------------------------------------------- probes and scrapes

HEALTHZ = _declare(
    Route(
        name="healthz",
        method="GET",
        path="/healthz",
        summary="Liveness: the admin listener answers",
        access=Access.OPEN,
        workers=Workers(Fanout.PROBE, Merge.HEALTH),
        client="health",
        command=Command(("health",), "exit 0 when the admin API's /healthz answers ok"),
    )
)
READYZ = _declare(
    Route(
        name="readyz",
        method="GET",
        path="/readyz",
        summary="Readiness: the upstream is reachable (503 otherwise)",
        access=Access.OPEN,
        workers=Workers(Fanout.PROBE, Merge.READY),
        answers={200: "ready", 503: "the upstream is unreachable"},
    )
)
METRICS = _declare(
    Route(
        name="metrics",
        method="GET",
        path="/metrics",
        summary="Prometheus exposition",
        access=Access.OPEN,
        workers=Workers(Fanout.READ_ALL, Merge.METRICS),
        content_type="text/plain",
        client="metrics",
    )
)

# ---------------------------------------------------------------- scenarios

LIST_SCENARIOS = _declare(
    Route(
        name="list_scenarios",
        method="GET",
        path="/scenarios",
        summary="Scenarios in the scenario directory, with phases and durations",
        description="Files that do not validate are listed apart under `invalid`, with their "
        "located problems; uploads are marked `uploaded`.",
        access=Access.READ,
        workers=Workers(Fanout.WORKER_0),
    )
)
STOP = _declare(
    Route(
        name="stop_scenario",
        method="POST",
        path="/scenarios/stop",
        summary="Stop whatever scenario runs",
        description="Also cancels a scheduled start. `stopped` names the scenario, or is null.",
        access=Access.WRITE,
        workers=Workers(Fanout.WRITE_ALL, Merge.STOPPED),
        client="stop",
        command=Command(("ctl", "stop"), "stop the running scenario"),
    )
)
GET_SCENARIO = _declare(
    Route(
        name="get_scenario",
        method="GET",
        path="/scenarios/{name}",
        summary="One scenario: phases with offsets, rules, guardrails",
        access=Access.READ,
        workers=Workers(Fanout.WORKER_0),
        errors=(404, 422),
    )
)
PUT_SCENARIO = _declare(
    Route(
        name="put_scenario",
        method="PUT",
        path="/scenarios/{name}",
        summary=f"Send a scenario as YAML text (at most {MAX_UPLOAD // 1024} KiB, no includes): "
        "validated with located errors (422), kept in memory under NAME (201 new, 200 replaced)",
        access=Access.WRITE,
        workers=Workers(Fanout.WRITE_ALL),
        body=Body("application/yaml", {"type": "string"}, required=True, max_bytes=MAX_UPLOAD),
        answers={201: "kept under a new name", 200: "replaced the upload of that name"},
        errors=(409, 413, 422),
        client="upload",
    )
)
DELETE_SCENARIO = _declare(
    Route(
        name="delete_scenario",
        method="DELETE",
        path="/scenarios/{name}",
        summary="Forget an uploaded scenario",
        access=Access.WRITE,
        workers=Workers(Fanout.WRITE_ALL),
        errors=(404,),
    )
)
START_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "seed": {"type": "integer"},
        "repeat": {"oneOf": [{"type": "integer", "minimum": 1}, {"const": "forever"}]},
        "replace": {"type": "boolean"},
        "at": {
            "type": "number",
            "description": "Unix time to start at (phases line up across proxies given the "
            "same instant); up to 5 s late is backdated, up to a day ahead",
        },
    },
}
START = _declare(
    Route(
        name="start_scenario",
        method="POST",
        path="/scenarios/{name}/start",
        summary="Start a scenario now (409 if one runs unless replace)",
        access=Access.WRITE,
        workers=Workers(Fanout.WRITE_ALL, Merge.STARTED),
        body=Body("application/json", START_BODY, required=False),
        answers={201: "started (or scheduled): the status"},
        errors=(404, 409, 422),
        client="start",
        command=Command(
            ("ctl", "start"),
            "start a scenario: a NAME the sidecars know, or a local FILE sent to each of them",
            args="NAME|FILE",
        ),
    )
)

# ---------------------------------------------------------------- status and ad-hoc rules

STATUS = _declare(
    Route(
        name="status",
        method="GET",
        path="/status",
        summary="Active scenario, phase, elapsed/remaining, per-rule counts, guardrails",
        access=Access.READ,
        workers=Workers(Fanout.READ_ALL, Merge.STATUS),
        client="status",
        command=Command(("ctl", "status"), "show status"),
    )
)
LIST_RULES = _declare(
    Route(
        name="list_rules",
        method="GET",
        path="/rules",
        summary="Active ad-hoc rules",
        access=Access.READ,
        workers=Workers(Fanout.READ_ALL, Merge.RULES),
        command=Command(("ctl", "rules", "list"), "list the live ad-hoc rules"),
    )
)
RULE_BODY = {
    "type": "object",
    "properties": {
        "match": {"type": "object"},
        "probability": {"type": "number"},
        "fault": {"type": "object"},
        "ttl": {"type": ["string", "number"]},
    },
}
ADD_RULE = _declare(
    Route(
        name="add_rule",
        method="POST",
        path="/rules",
        summary="Add an ad-hoc rule (same schema as a scenario rule, plus optional ttl)",
        access=Access.WRITE,
        workers=Workers(Fanout.WRITE_ALL, Merge.SAME_RULE),
        body=Body("application/json", RULE_BODY, required=True),
        answers={201: "the rule, with its id"},
        errors=(409,),
        command=Command(
            ("ctl", "rules", "add"), "add the rule in FILE (YAML or JSON, one rule)", args="FILE"
        ),
    )
)
CLEAR_RULES = _declare(
    Route(
        name="clear_rules",
        method="DELETE",
        path="/rules",
        summary="Delete every ad-hoc rule",
        access=Access.WRITE,
        workers=Workers(Fanout.WRITE_ALL, Merge.MOST_DELETED),
        client="clear_rules",
        command=Command(("ctl", "rules", "clear"), "delete every ad-hoc rule"),
    )
)
DELETE_RULE = _declare(
    Route(
        name="delete_rule",
        method="DELETE",
        path="/rules/{id}",
        summary="Delete one ad-hoc rule",
        access=Access.WRITE,
        workers=Workers(Fanout.WRITE_ALL),
        errors=(404,),
        command=Command(("ctl", "rules", "delete"), "delete the ad-hoc rule ID"),
    )
)
RESET = _declare(
    Route(
        name="reset",
        method="POST",
        path="/reset",
        summary="Stop the scenario, clear ad-hoc rules, guardrail history and stats",
        access=Access.WRITE,
        workers=Workers(Fanout.WRITE_ALL, Merge.RESET),
        client="reset",
        command=Command(("ctl", "reset"), "stop everything and clear ad-hoc rules"),
    )
)

# ---------------------------------------------------------------- the API itself, history

OPENAPI = _declare(
    Route(
        name="openapi",
        method="GET",
        path="/openapi.json",
        summary="This document",
        access=Access.READ,
        workers=Workers(Fanout.SUPERVISOR, Merge.DOCUMENT),
    )
)
TIMESERIES = _declare(
    Route(
        name="timeseries",
        method="GET",
        path="/stats/timeseries",
        summary="Per-second requests, errors, error rate, injected count, p50/p95/p99, and "
        "Retry-After answers with the early and patient retries that followed",
        description="`seconds=N` (the last N complete seconds) or `from`/`to` (Unix seconds, "
        "`to` exclusive, clamped to the last complete second).",
        access=Access.READ,
        workers=Workers(Fanout.READ_ALL, Merge.TIMESERIES),
        query=(
            Param(
                "seconds",
                {"type": "integer", "minimum": 1, "maximum": KEEP_SECONDS, "default": 60},
            ),
            Param("from", {"type": "integer", "minimum": 0, "maximum": 2**40}, "first Unix second"),
            Param(
                "to",
                {"type": "integer", "minimum": 0, "maximum": 2**40},
                "Unix second after the last",
            ),
            Param("run", RUN_ID, "only the requests of this run"),
            Param("histograms", {"type": "boolean"}, "add each second's latency sketch"),
        ),
        client="timeseries",
    )
)
STATS_CLIENTS = _declare(
    Route(
        name="stats_clients",
        method="GET",
        path="/stats/clients",
        summary="Who a run touched: each client's cohort, first and last second, and the seconds "
        "in which it got an injected fault (no client ids)",
        description="At most 50,000 clients per run (then `truncated`), 100 hurt seconds per "
        "client (then its `hurt_truncated`); an unknown run has no clients.",
        access=Access.READ,
        workers=Workers(Fanout.READ_ALL, Merge.CLIENTS),
        query=(Param("run", RUN_ID, "the run whose clients to list", required=True),),
        client="stats_clients",
    )
)
EVENTS = _declare(
    Route(
        name="events",
        method="GET",
        path="/events",
        summary="State changes (scenario started/stopped/finished, phase changed, rules, "
        "guardrail trips, reloads) with Unix times, after the cursor `since`",
        access=Access.READ,
        workers=Workers(Fanout.SUPERVISOR, Merge.EVENT_RING),
        query=(
            Param("since", {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0}),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 500}),
        ),
        client="events",
    )
)
