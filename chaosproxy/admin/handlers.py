"""The single proxy's admin handlers: HTTP in and out, one per declared route, named as it.

What each route does lives in `control.py`; here is only what HTTP adds: reading the path,
query and body (with the bounds `routes.py` declares), and the status of the answer.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from chaosproxy.admin import control, routes
from chaosproxy.admin.declare import Param
from chaosproxy.admin.errors import ApiError, bad_request
from chaosproxy.admin.plane import ControlPlane
from chaosproxy.common.logs import redact

PLANE = web.AppKey("control plane", ControlPlane)


# ---------------------------------------------------------------- reading a request


def query_int(request: web.Request, param: Param, default: int | None = None) -> int:
    """An integer query parameter within its declared bounds (`default`: when it is absent;
    else the declared default); a 400 naming it otherwise."""
    lo, hi = param.bounds()
    raw = request.query.get(param.name)
    if raw is None:
        return int(param.schema["default"]) if default is None else default
    try:
        value = int(raw)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise bad_request(param.name, f"expected {lo}..{hi}, got {raw[:40]!r}")
    return value


async def json_body(request: web.Request, *, optional: bool) -> Any:
    raw = await request.read()
    if not raw.strip():
        if optional:
            return {}
        raise bad_request("body", "a JSON body is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request("body", f"invalid JSON: {str(e)[:200]}") from None
    except RecursionError:
        raise bad_request("body", "JSON nested too deeply") from None


# ---------------------------------------------------------------- probes and scrapes


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    ok = await cp.upstream_ready()
    body = {
        "status": "ready" if ok else "upstream unreachable",
        "upstream": redact(cp.upstream_url),  # open even with a token: no credentials
    }
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    return web.Response(body=cp.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


# ---------------------------------------------------------------- scenarios


async def list_scenarios(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    return web.json_response(control.list_scenarios(cp))


async def get_scenario(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    sc = control.load_scenario(cp, request.match_info["name"])
    return web.json_response(control.describe_scenario(sc, base=cp.scenario_dir))


async def start_scenario(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    body = await json_body(request, optional=True)
    opts = control.start_options(body)
    sc = control.load_scenario(cp, request.match_info["name"])
    control.start(cp, sc, opts)
    return web.json_response(control.status(cp), status=201)


async def stop_scenario(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    stopped = control.stop(cp)
    return web.json_response({"stopped": stopped, "status": control.status(cp)})


async def put_scenario(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    limit = routes.MAX_UPLOAD
    too_big = ApiError(413, "Payload Too Large", f"a scenario may be at most {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_big
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise too_big
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        from chaosproxy.config.located import position

        line, col = position(raw, e.start)
        problem = f"the scenario must be UTF-8 YAML: {e.reason} at line {line}, column {col}"
        raise bad_request("body", problem) from None
    sc, created = control.upload_scenario(cp, request.match_info["name"], text)
    return web.json_response(control.describe_scenario(sc), status=201 if created else 200)


async def delete_scenario(request: web.Request) -> web.Response:
    control.delete_upload(request.app[PLANE], request.match_info["name"])
    return web.json_response({"deleted": request.match_info["name"]})


# ---------------------------------------------------------------- status and ad-hoc rules


async def status(request: web.Request) -> web.Response:
    return web.json_response(control.status(request.app[PLANE]))


async def add_rule(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    body = await json_body(request, optional=False)
    rule = control.add_rule(cp, body)
    return web.json_response(rule, status=201)


async def list_rules(request: web.Request) -> web.Response:
    return web.json_response({"rules": control.list_rules(request.app[PLANE])})


async def clear_rules(request: web.Request) -> web.Response:
    n = control.clear_rules(request.app[PLANE])
    return web.json_response({"deleted": n})


async def delete_rule(request: web.Request) -> web.Response:
    control.delete_rule(request.app[PLANE], request.match_info["id"])
    return web.json_response({"deleted": 1})


async def reset(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    control.reset(cp)
    return web.json_response({"reset": True, "status": control.status(cp)})


# ---------------------------------------------------------------- the API itself, history


async def openapi(request: web.Request) -> web.Response:
    from chaosproxy.admin.openapi import document

    return web.json_response(document())


async def timeseries(request: web.Request) -> web.Response:
    """`?seconds=N` (the last N complete seconds) or `?from=T&to=T` (Unix seconds, `to`
    exclusive, clamped to the last complete second); `run=ID` keeps that run's traffic only;
    `histograms=1` adds each second's sparse latency histogram."""
    cp = request.app[PLANE]
    route = routes.TIMESERIES
    keep = cp.stats.keep
    last_complete = int(cp.clock.wall()) - 1
    q = request.query
    if "from" in q or "to" in q:
        first = query_int(request, route.param("from"), last_complete - 59)
        end = min(query_int(request, route.param("to"), last_complete + 1), last_complete + 1)
        if end - first > keep:
            raise bad_request("from", f"at most {keep} seconds per request")
        last = end - 1
    else:
        seconds = query_int(request, route.param("seconds"))
        if seconds > keep:
            raise bad_request("seconds", f"expected 1..{keep}, got {q['seconds'][:40]!r}")
        first, last = last_complete - seconds + 1, last_complete
    run = run_param(request, route.param("run"))
    histograms = q.get("histograms", "") in ("1", "true")
    series = control.timeseries(cp, first, last, run, histograms)
    body: dict[str, Any] = {"from": first, "to": last + 1, "series": series}
    if "from" not in q and "to" not in q:
        body["seconds"] = last - first + 1
    if run is not None:
        body["run"] = run
    return web.json_response(body)


def run_param(request: web.Request, param: Param) -> str | None:
    """A run id (X-Chaos-Run), within its declared length; None when absent or empty (a 400
    when the parameter is declared required)."""
    run = request.query.get(param.name) or None
    longest = int(param.schema["maxLength"])
    if run is None and param.required:
        raise bad_request(param.name, "required: the run id (X-Chaos-Run)")
    if run is not None and len(run) > longest:
        raise bad_request(param.name, f"at most {longest} characters")
    return run


async def stats_clients(request: web.Request) -> web.Response:
    run = run_param(request, routes.STATS_CLIENTS.param("run"))
    assert run is not None
    return web.json_response(request.app[PLANE].stats.clients(run))


async def events(request: web.Request) -> web.Response:
    since = query_int(request, routes.EVENTS.param("since"))
    limit = query_int(request, routes.EVENTS.param("limit"))
    return web.json_response(control.events(request.app[PLANE], since, limit))
