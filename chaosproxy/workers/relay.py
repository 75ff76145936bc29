"""The one admin API of `run --workers N`: the same declared routes as a single proxy's, served by
the supervisor as each route's `Workers` policy says (`admin/routes.py`); no list of its own.

- `WRITE_ALL` (scenario upload, start, stop, rules, reset) goes to every worker. When all of
  them answer alike, the route's `Merge` makes the answer; when they differ (a worker
  unreachable, or one refused what the others took) it is a 502 listing each worker's answer.
- A start without `at` is given one (the supervisor's now): every worker's timeline then has the
  same origin, so phases change at the same instant everywhere (`Merge.STARTED`).
- `READ_ALL` (`/status`, `/rules`, `/stats/timeseries`, `/metrics`) asks every worker and merges
  (`merge.py`); `WORKER_0`: what every worker knows alike (scenario files, `/scenarios/{name}`);
  `PROBE`: the health checks, failing when one worker fails.
- `SUPERVISOR`: `/events` is the supervisor's own ring (`fanout.py`): worker 0's state changes,
  plus the `abort_if` trips of the others. A trip on any worker stops the scenario on every one.

The request-id, token, browser and DNS-rebinding middlewares are the single proxy's own
(`admin.app`); they read the `Front` this app gives them (the public listener's access rules).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web

from chaosproxy.admin import handlers, routes
from chaosproxy.admin.app import REQUEST_ID, Front, Handler, guarded_app
from chaosproxy.admin.declare import Fanout, Merge, Route
from chaosproxy.admin.errors import ApiError
from chaosproxy.admin.handlers import query_int
from chaosproxy.admin.plane import AdminAccess
from chaosproxy.common.ids import RequestIds
from chaosproxy.observe.stats import KEEP_SECONDS
from chaosproxy.workers import merge
from chaosproxy.workers.fanout import Answer, Backend, Relay

if TYPE_CHECKING:
    from chaosproxy.process.runtime import Settings

__all__ = ["MERGES", "Answer", "Backend", "Relay", "make_relay_app", "relay_handler"]


RELAY: web.AppKey[Relay] = web.AppKey("relay", Relay)


@dataclass
class Call:
    """What the supervisor sends every worker for one client request, and what preparing it
    learned for the merge (the instant of a start, the window of a `seconds=N` read)."""

    path: str
    data: bytes | None
    content_type: str | None
    note: dict[str, Any] = field(default_factory=dict)


Merger = Callable[[web.Request, Call, list[Answer]], web.Response]


# ---------------------------------------------------------------- helpers


def _relay(request: web.Request) -> Relay:
    return request.app[RELAY]


def _headers(request: web.Request, content_type: str | None = None) -> dict[str, str]:
    h = {"X-Request-Id": request[REQUEST_ID]}
    if content_type:
        h["Content-Type"] = content_type
    return h


def agreed(answers: list[Answer]) -> list[Answer]:
    """The answers when every worker answered, with one status; else a 502 naming each."""
    if all(a.status == answers[0].status != 0 for a in answers):
        return answers
    raise ApiError(
        502,
        "Bad Gateway",
        {
            "problem": "the workers answered differently; POST /reset puts them back in line",
            "workers": [
                {"worker": a.worker.index, "pid": a.worker.pid, "status": a.status}
                | ({"error": _message(a.body)} if a.status != 200 else {})
                for a in answers
            ],
        },
    )


def _message(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return {"message": err.get("message"), "details": err.get("details")}
    return str(body)[:300]


def passthrough(a: Answer) -> web.Response:
    """A worker's answer as the client's (its JSON error carries the client's request id)."""
    if isinstance(a.body, dict | list):
        return web.json_response(a.body, status=a.status)
    if a.status >= 400:
        raise ApiError(a.status, HTTPStatus(a.status).phrase, str(a.body)[:300])
    return web.Response(text=str(a.body), status=a.status)


def _merged_status(relay: Relay, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    out = merge.status(bodies)
    out["instance"] = relay.instance
    out["time"] = time.time()
    out["workers"] = relay.describe_workers()
    return out


# ---------------------------------------------------------------- serving a route by its policy


async def _outgoing(request: web.Request, route: Route) -> Call:
    """The client's call as the workers get it: its path and query, and its body (a scenario
    upload read up to one byte past its cap: the worker answers the 413)."""
    body = route.body
    data: bytes | None = None
    if body is not None:
        if body.max_bytes is not None:
            data = await request.content.read(body.max_bytes + 1)
        else:
            data = await request.read()
    ctype = body.content_type if body is not None else None
    return Call(request.rel_url.raw_path_qs, data, ctype)


def relay_handler(route: Route) -> Handler:
    """The supervisor's handler of a declared route, from its `Workers` policy."""
    policy = route.workers
    if policy.fanout is Fanout.SUPERVISOR:
        return OWN[policy.merge]
    if policy.fanout is Fanout.WORKER_0:
        return from_worker0
    merger = MERGES[policy.merge]
    prepare = PREPARE.get(policy.merge)

    async def fanned(request: web.Request) -> web.StreamResponse:
        relay = _relay(request)
        call = await _outgoing(request, route)
        if prepare is not None:
            call = prepare(request, call)
        if policy.fanout is Fanout.PROBE:
            if not relay.backends:
                return merger(request, call, [])
            headers = _headers(request)
            return merger(request, call, await relay.all(route.method, call.path, None, headers))
        headers = _headers(request, call.content_type)
        answers = agreed(await relay.all(route.method, call.path, call.data, headers))
        if answers[0].status >= 400:
            return passthrough(answers[0])
        return merger(request, call, answers)

    return fanned


async def from_worker0(request: web.Request) -> web.Response:
    """What every worker knows alike (scenario files and uploads): worker 0 answers."""
    relay = _relay(request)
    if not relay.backends:
        raise ApiError(503, "Service Unavailable", "the workers are starting or stopping")
    a = await relay.call(
        relay.backends[0], "GET", request.rel_url.raw_path_qs, None, _headers(request)
    )
    if a.status == 0:
        raise ApiError(502, "Bad Gateway", f"worker 0 unreachable: {a.body}")
    return passthrough(a)


# ---------------------------------------------------------------- preparing a call


def _stamp_start(request: web.Request, call: Call) -> Call:
    """A start without `at` gets the supervisor's now: one origin for every worker's timeline."""
    try:
        body = json.loads(call.data) if call.data and call.data.strip() else {}
    except ValueError:
        body = None  # the workers explain what is wrong with it
    if isinstance(body, dict) and "at" not in body:
        body["at"] = time.time()
        call.data = json.dumps(body).encode()
    call.note["at"] = time.time()
    return call


def _pin_window(request: web.Request, call: Call) -> Call:
    """A `seconds=N` window turned into `from`/`to` here, so no worker's clock picks a
    different last second; histograms always asked, to merge quantiles exactly."""
    q = dict(request.query)
    if "from" not in q and "to" not in q:
        raw = q.pop("seconds", "60")
        if raw.isdigit() and 1 <= int(raw) <= KEEP_SECONDS:
            seconds = int(raw)
            last = int(time.time()) - 1
            q["from"], q["to"] = str(last - seconds + 1), str(last + 1)
            call.note["seconds"] = seconds
        else:
            q["seconds"] = raw  # a worker says what is wrong with it
    call.note["histograms"] = q.get("histograms", "") in ("1", "true")
    q["histograms"] = "1"
    call.path = request.rel_url.raw_path + "?" + urllib.parse.urlencode(q)
    return call


PREPARE: dict[Merge, Callable[[web.Request, Call], Call]] = {
    Merge.STARTED: _stamp_start,
    Merge.TIMESERIES: _pin_window,
}


# ---------------------------------------------------------------- one answer from many


def _first(request: web.Request, call: Call, answers: list[Answer]) -> web.Response:
    return passthrough(answers[0])


def _health(request: web.Request, call: Call, answers: list[Answer]) -> web.Response:
    if not answers:
        return web.json_response({"status": "starting or stopping"}, status=503)
    bad = [
        f"worker {a.worker.index} (pid {a.worker.pid}): "
        + (str(a.body) if a.status == 0 else f"HTTP {a.status}")
        for a in answers
        if a.status != 200
    ]
    body: dict[str, Any] = {"status": "unhealthy" if bad else "ok", "workers": len(answers)}
    if bad:
        body["problems"] = bad
    return web.json_response(body, status=503 if bad else 200)


def _ready(request: web.Request, call: Call, answers: list[Answer]) -> web.Response:
    if not answers:
        raise ApiError(503, "Service Unavailable", "the workers are starting or stopping")
    for a in answers:
        if a.status == 0:
            return web.json_response(
                {"status": f"worker {a.worker.index} unreachable: {a.body}"}, status=503
            )
        if a.status != 200:
            return passthrough(a)
    return passthrough(answers[0])


def _metrics(request: web.Request, call: Call, answers: list[Answer]) -> web.Response:
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    text = merge.metrics([str(a.body) for a in answers], len(answers))
    return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _status(request: web.Request, call: Call, answers: list[Answer]) -> web.Response:
    return web.json_response(_merged_status(_relay(request), [a.body for a in answers]))


def _started(request: web.Request, call: Call, answers: list[Answer]) -> web.Response:
    relay = _relay(request)
    relay.last_start = call.note["at"]
    return web.json_response(_merged_status(relay, [a.body for a in answers]), status=201)


def _stopped(request: web.Request, call: Call, answers: list[Answer]) -> web.Response:
    stopped = next((a.body.get("stopped") for a in answers if a.body.get("stopped")), None)
    status = _merged_status(_relay(request), [a.body["status"] for a in answers])
    return web.json_response({"stopped": stopped, "status": status})


def _reset(request: web.Request, call: Call, answers: list[Answer]) -> web.Response:
    status = _merged_status(_relay(request), [a.body["status"] for a in answers])
    return web.json_response({"reset": True, "status": status})


def _rules(request: web.Request, call: Call, answers: list[Answer]) -> web.Response:
    return web.json_response({"rules": merge.rules([a.body["rules"] for a in answers])})


def _same_rule(request: web.Request, call: Call, answers: list[Answer]) -> web.Response:
    ids = {a.body.get("id") for a in answers}
    if len(ids) != 1:
        raise ApiError(
            502,
            "Bad Gateway",
            f"the workers gave the rule different ids ({', '.join(sorted(map(str, ids)))}); "
            "POST /reset puts them back in line",
        )
    return passthrough(answers[0])


def _most_deleted(request: web.Request, call: Call, answers: list[Answer]) -> web.Response:
    return web.json_response({"deleted": max(int(a.body.get("deleted", 0)) for a in answers)})


def _timeseries(request: web.Request, call: Call, answers: list[Answer]) -> web.Response:
    body = dict(answers[0].body)
    body["series"] = merge.timeseries([a.body["series"] for a in answers], call.note["histograms"])
    if "seconds" in call.note:
        body["seconds"] = call.note["seconds"]
    return web.json_response(body)


def _clients(request: web.Request, call: Call, answers: list[Answer]) -> web.Response:
    """Every worker's clients, one list after the other (a client whose connections went to
    two workers appears twice); `truncated` when any worker's list was."""
    body = dict(answers[0].body)
    body["clients"] = [c for a in answers for c in a.body.get("clients", [])]
    body["count"] = sum(int(a.body.get("count", 0)) for a in answers)
    body["truncated"] = any(bool(a.body.get("truncated")) for a in answers)
    return web.json_response(body)


MERGES: dict[Merge, Merger] = {
    Merge.FIRST: _first,
    Merge.HEALTH: _health,
    Merge.READY: _ready,
    Merge.METRICS: _metrics,
    Merge.STATUS: _status,
    Merge.STARTED: _started,
    Merge.STOPPED: _stopped,
    Merge.RESET: _reset,
    Merge.RULES: _rules,
    Merge.SAME_RULE: _same_rule,
    Merge.MOST_DELETED: _most_deleted,
    Merge.TIMESERIES: _timeseries,
    Merge.CLIENTS: _clients,
}


# ---------------------------------------------------------------- the supervisor's own answers


async def events(request: web.Request) -> web.Response:
    since = query_int(request, routes.EVENTS.param("since"))
    limit = query_int(request, routes.EVENTS.param("limit"))
    relay = _relay(request)
    await relay.refresh_events()
    found, dropped = relay.events.since(since, limit)
    return web.json_response(
        {
            "events": found,
            "next": found[-1]["seq"] if found else max(since, 0),
            "last": relay.events.last_seq,
            "dropped": dropped,
            "instance": relay.instance,
            "time": time.time(),
        }
    )


OWN: dict[Merge, Handler] = {Merge.EVENT_RING: events, Merge.DOCUMENT: handlers.openapi}


def make_relay_app(relay: Relay, settings: Settings) -> web.Application:
    """The admin app on `settings.admin_host:admin_port`, guarded by `settings.admin_token`."""
    access = AdminAccess(host=settings.admin_host, insecure=settings.admin_insecure)
    app = guarded_app(Front(access, RequestIds().next), settings.admin_token, relay_handler)
    app[RELAY] = relay
    return app
