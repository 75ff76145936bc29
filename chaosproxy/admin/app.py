"""Admin application: every route in one table; every error rendered as JSON by one middleware.

Handlers raise `ApiError(status, message, details)`; `error_middleware` turns it (and anything
unexpected) into `{"error": {...}}` with a request id, so no stack trace ever reaches a client.
Every route but the probes and /metrics requires `Authorization: Bearer <token>` when a token
is configured.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chaosproxy.admin import control
from chaosproxy.admin.errors import ApiError, bad_request
from chaosproxy.admin.plane import AdminAccess, ControlPlane
from chaosproxy.process.logs import redact

log = logging.getLogger("chaosproxy.admin")


@dataclass(frozen=True)
class Front:
    """What the middlewares read: who may call, and where fresh request ids come from. The
    admin app takes them from its control plane; `run --workers N`'s relay has its own."""

    access: AdminAccess
    request_id: Callable[[], str]


PLANE = web.AppKey("control plane", ControlPlane)
FRONT = web.AppKey("front", Front)
TOKEN: web.AppKey[str] = web.AppKey("token", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

__all__ = ["ApiError", "make_admin_app", "routes"]


REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every admin answer carries `X-Request-Id` (the client's own when it sent one)."""
    rid = request.headers.get("X-Request-Id") or request.app[FRONT].request_id()
    request[REQUEST_ID] = rid
    try:
        response = await handler(request)
    except web.HTTPException as e:  # redirects and the like, raised rather than returned
        e.headers["X-Request-Id"] = rid
        raise
    response.headers["X-Request-Id"] = rid
    return response


def bad_request_details(details: Any, message: str) -> list[Any]:
    """A 400's details are always a list of `{"field": ..., "problem": ...}` objects."""
    if details is None:  # e.g. aiohttp's own 400s
        return [{"field": "request", "problem": message}]
    if isinstance(details, dict):
        return [details]
    if isinstance(details, list):
        return details
    return [{"field": "request", "problem": str(details)}]


def _error_response(request: web.Request, status: int, message: str, details: Any) -> web.Response:
    rid = request.get(REQUEST_ID) or request.app[FRONT].request_id()
    if status == 400:
        details = bad_request_details(details, message)
    body: dict[str, Any] = {"code": status, "message": message, "requestId": rid}
    if details is not None:
        body["details"] = details
    headers = {"X-Request-Id": rid}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="chaosproxy"'
    return web.json_response({"error": body}, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return _error_response(request, e.status, e.message, e.details)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _error_response(request, e.status, e.reason, None)
    except Exception:
        rid = request.get(REQUEST_ID, "")
        log.exception("admin API failure %s %s [%s]", request.method, request.path, rid)
        return _error_response(request, 500, "Internal Server Error", "see the proxy log")


_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _loopback(host: str) -> bool:
    import ipaddress

    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@web.middleware
async def browser_guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A web page must not drive the admin API through the user's browser.

    - A mutating request that carries `Origin` (browsers always send it on POST, PUT, DELETE)
      must come from the admin API's own origin: a cross-site form or fetch is refused.
    - Without a token (a loopback listener), the `Host` must name a loopback address: a page
      whose domain was re-bound to 127.0.0.1 (DNS rebinding) sends its own name and is refused.
      The same holds for a `--workers` worker's private admin (`open_reads`), whose reads need
      no token: only the supervisor calls it, by its loopback address.
    """
    origin = request.headers.get("Origin")
    if origin is not None and request.method in MUTATING:
        import yarl

        try:
            o = yarl.URL(origin)
            same = (
                o.host is not None
                and f"{o.host}:{o.port}" == f"{request.url.host}:{request.url.port}"
            )
        except (ValueError, TypeError):
            same = False
        if not same:
            raise ApiError(
                403,
                "Forbidden",
                f"cross-origin request from {origin[:100]!r} refused: the admin API is not for "
                "web pages",
            )
    access = request.app[FRONT].access
    if (not request.app[TOKEN] or access.open_reads) and not access.insecure:
        host = request.url.host or ""
        if not _loopback(host) and host != access.host:
            who = (
                "a worker's private admin API answers"
                if access.open_reads
                else "without --admin-token the admin API answers"
            )
            raise ApiError(
                403,
                "Forbidden",
                f"Host {host[:100]!r} refused: {who} only requests addressed to a loopback name "
                "(DNS rebinding guard)",
            )
    return await handler(request)


# Open even with a token: probes and scrapes carry no secret (docs/admin-api.md).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With a token set, every route but OPEN_PATHS needs it (compared in constant time): the
    reads show scenarios, rules and traffic, which are not for anyone who can reach the port.
    A worker's private admin (`AdminAccess.open_reads`) needs it for writes only."""
    token = request.app[TOKEN]
    reads_open = request.app[FRONT].access.open_reads
    if token and request.path not in OPEN_PATHS and (request.method in MUTATING or not reads_open):
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        # Header bytes that are not UTF-8 arrive as surrogate escapes: compared as the bytes
        # they were (never equal to the token), not a UnicodeEncodeError and a 500.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode("utf-8", "surrogateescape"), token.encode()
        ):
            raise ApiError(
                401,
                "Unauthorized",
                "this route needs 'Authorization: Bearer <token>' (the --admin-token)",
            )
    return await handler(request)


# ---------------------------------------------------------------- handlers


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


async def list_scenarios(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    return web.json_response(control.list_scenarios(cp))


async def get_scenario(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    sc = control.load_scenario(cp, request.match_info["name"])
    return web.json_response(control.describe_scenario(sc, base=cp.scenario_dir))


async def start_scenario(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    body = await _json_body(request, optional=True)
    opts = control.start_options(body)
    sc = control.load_scenario(cp, request.match_info["name"])
    control.start(cp, sc, opts)
    return web.json_response(control.status(cp), status=201)


async def stop_scenario(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    stopped = control.stop(cp)
    return web.json_response({"stopped": stopped, "status": control.status(cp)})


MAX_UPLOAD = 256 * 1024  # bytes of scenario YAML accepted by PUT /scenarios/{name}


async def put_scenario(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    if request.content_length is not None and request.content_length > MAX_UPLOAD:
        raise ApiError(413, "Payload Too Large", f"a scenario may be at most {MAX_UPLOAD} bytes")
    raw = await request.content.read(MAX_UPLOAD + 1)
    if len(raw) > MAX_UPLOAD:
        raise ApiError(413, "Payload Too Large", f"a scenario may be at most {MAX_UPLOAD} bytes")
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


async def events(request: web.Request) -> web.Response:
    since = _int_param(request, "since", 0, 0, 2**62)
    limit = _int_param(request, "limit", 500, 1, 1000)
    return web.json_response(control.events(request.app[PLANE], since, limit))


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise bad_request(name, f"expected {lo}..{hi}, got {raw[:40]!r}")
    return value


async def status(request: web.Request) -> web.Response:
    return web.json_response(control.status(request.app[PLANE]))


async def add_rule(request: web.Request) -> web.Response:
    cp = request.app[PLANE]
    body = await _json_body(request, optional=False)
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


async def openapi(request: web.Request) -> web.Response:
    from chaosproxy.admin.openapi import document

    return web.json_response(document())


async def timeseries(request: web.Request) -> web.Response:
    """`?seconds=N` (the last N complete seconds) or `?from=T&to=T` (Unix seconds, `to`
    exclusive, clamped to the last complete second); `run=ID` keeps that run's traffic only;
    `histograms=1` adds each second's sparse latency histogram."""
    cp = request.app[PLANE]
    keep = cp.stats.keep
    last_complete = int(cp.clock.wall()) - 1
    q = request.query
    if "from" in q or "to" in q:
        first = _int_param(request, "from", last_complete - 59, 0, 2**40)
        end = min(_int_param(request, "to", last_complete + 1, 0, 2**40), last_complete + 1)
        if end - first > keep:
            raise bad_request("from", f"at most {keep} seconds per request")
        last = end - 1
    else:
        seconds = _int_param(request, "seconds", 60, 1, keep)
        first, last = last_complete - seconds + 1, last_complete
    run = q.get("run") or None
    if run is not None and len(run) > 64:
        raise bad_request("run", "at most 64 characters")
    histograms = q.get("histograms", "") in ("1", "true")
    series = control.timeseries(cp, first, last, run, histograms)
    body: dict[str, Any] = {"from": first, "to": last + 1, "series": series}
    if "from" not in q and "to" not in q:
        body["seconds"] = last - first + 1
    if run is not None:
        body["run"] = run
    return web.json_response(body)


MAX_BODY = 1024 * 1024  # bytes of any admin request body (aiohttp answers 413 past it)


async def _json_body(request: web.Request, *, optional: bool) -> Any:
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


def routes() -> list[web.RouteDef]:
    """The whole admin API, in one place (openapi.py documents exactly these)."""
    return [
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics),
        web.get("/scenarios", list_scenarios),
        web.post("/scenarios/stop", stop_scenario),
        web.get("/scenarios/{name}", get_scenario),
        web.put("/scenarios/{name}", put_scenario),
        web.delete("/scenarios/{name}", delete_scenario),
        web.post("/scenarios/{name}/start", start_scenario),
        web.get("/status", status),
        web.get("/rules", list_rules),
        web.post("/rules", add_rule),
        web.delete("/rules", clear_rules),
        web.delete("/rules/{id}", delete_rule),
        web.post("/reset", reset),
        web.get("/openapi.json", openapi),
        web.get("/stats/timeseries", timeseries),
        web.get("/events", events),
    ]


def guarded_app(front: Front, token: str | None, table: list[web.RouteDef]) -> web.Application:
    """An admin app serving `table` behind the request-id, error, browser and token guards and
    the body cap; shared by the single proxy's app and the `--workers` relay."""
    app = web.Application(
        middlewares=[
            request_id_middleware,
            error_middleware,
            browser_guard_middleware,
            auth_middleware,
        ],
        client_max_size=MAX_BODY,
    )
    app[FRONT] = front
    app[TOKEN] = token or ""
    app.add_routes(table)
    return app


def make_admin_app(plane: ControlPlane, token: str | None = None) -> web.Application:
    app = guarded_app(Front(plane.access, plane.request_id), token, routes())
    app[PLANE] = plane
    return app
