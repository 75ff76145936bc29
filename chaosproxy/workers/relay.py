"""The one admin API of `run --workers N`: the same routes as a single proxy's, served by the
supervisor, which fans writes out to every worker's private admin and merges what they read.

- A write (scenario upload, start, stop, rules, reset) goes to every worker. When all of them
  answer alike, that is the answer; when they differ (a worker unreachable, or one refused what
  the others took) it is a 502 listing each worker's answer.
- A start without `at` is given one (the supervisor's now): every worker's timeline then has the
  same origin, so phases change at the same instant everywhere.
- Reads: `/status`, `/rules`, `/stats/timeseries`, `/metrics` are merged (`merge.py`); what
  every worker knows alike (scenario files, `/scenarios/{name}`) comes from worker 0.
- `/events` is the supervisor's own ring (`fanout.py`): worker 0's state changes, plus the
  `abort_if` trips of the others. A trip on any worker stops the scenario on every worker.

The request-id, token, browser and DNS-rebinding middlewares are the single proxy's own
(`admin.app`); they read the `Front` this app gives them (the public listener's access rules).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web

from chaosproxy.admin.app import (
    MAX_UPLOAD,
    REQUEST_ID,
    Front,
    _int_param,
    guarded_app,
)
from chaosproxy.admin.errors import ApiError
from chaosproxy.admin.plane import AdminAccess
from chaosproxy.common.ids import RequestIds
from chaosproxy.observe.stats import KEEP_SECONDS
from chaosproxy.workers import merge
from chaosproxy.workers.fanout import Answer, Backend, Relay

if TYPE_CHECKING:
    from chaosproxy.process.runtime import Settings

__all__ = ["Answer", "Backend", "Relay", "make_relay_app"]


RELAY: web.AppKey[Relay] = web.AppKey("relay", Relay)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


async def fan_out(
    request: web.Request,
    method: str,
    path: str,
    data: bytes | None = None,
    ctype: str | None = None,
) -> list[Answer] | web.Response:
    """The same call to every worker: the answers when they succeeded, else the error
    response (a write, or a read whose answers are merged)."""
    answers = agreed(await _relay(request).all(method, path, data, _headers(request, ctype)))
    if answers[0].status >= 400:
        return passthrough(answers[0])
    return answers


def _merged_status(relay: Relay, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    out = merge.status(bodies)
    out["instance"] = relay.instance
    out["time"] = time.time()
    out["workers"] = relay.describe_workers()
    return out


# ---------------------------------------------------------------- handlers


async def healthz(request: web.Request) -> web.Response:
    relay = _relay(request)
    if not relay.backends:
        return web.json_response({"status": "starting or stopping"}, status=503)
    answers = await relay.all("GET", "/healthz", headers=_headers(request))
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


async def readyz(request: web.Request) -> web.Response:
    answers = await _relay(request).all("GET", "/readyz", headers=_headers(request))
    for a in answers:
        if a.status == 0:
            return web.json_response(
                {"status": f"worker {a.worker.index} unreachable: {a.body}"}, status=503
            )
        if a.status != 200:
            return passthrough(a)
    return passthrough(answers[0])


async def metrics(request: web.Request) -> web.Response:
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    answers = await fan_out(request, "GET", "/metrics")
    if isinstance(answers, web.Response):
        return answers
    text = merge.metrics([str(a.body) for a in answers], len(answers))
    return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})


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


async def put_scenario(request: web.Request) -> web.Response:
    data = await request.content.read(MAX_UPLOAD + 1)  # the worker says 413 past its limit
    ctype = request.headers.get("Content-Type", "application/yaml")
    answers = await fan_out(request, "PUT", request.rel_url.raw_path, data, ctype)
    return answers if isinstance(answers, web.Response) else passthrough(answers[0])


async def write_then_first(request: web.Request) -> web.Response:
    """DELETE /scenarios/{name}, DELETE /rules/{id}: every worker's answer is the same."""
    answers = await fan_out(request, request.method, request.rel_url.raw_path)
    return answers if isinstance(answers, web.Response) else passthrough(answers[0])


async def start_scenario(request: web.Request) -> web.Response:
    relay = _relay(request)
    data = await request.read()
    try:
        body = json.loads(data) if data.strip() else {}
    except ValueError:
        body = None  # the workers explain what is wrong with it
    if isinstance(body, dict) and "at" not in body:
        body["at"] = time.time()  # one origin for every worker's timeline
        data = json.dumps(body).encode()
    at = time.time()
    answers = await fan_out(request, "POST", request.rel_url.raw_path, data, "application/json")
    if isinstance(answers, web.Response):
        return answers
    relay.last_start = at
    return web.json_response(_merged_status(relay, [a.body for a in answers]), status=201)


async def stop_scenario(request: web.Request) -> web.Response:
    answers = await fan_out(request, "POST", "/scenarios/stop")
    if isinstance(answers, web.Response):
        return answers
    stopped = next((a.body.get("stopped") for a in answers if a.body.get("stopped")), None)
    status = _merged_status(_relay(request), [a.body["status"] for a in answers])
    return web.json_response({"stopped": stopped, "status": status})


async def reset(request: web.Request) -> web.Response:
    answers = await fan_out(request, "POST", "/reset")
    if isinstance(answers, web.Response):
        return answers
    status = _merged_status(_relay(request), [a.body["status"] for a in answers])
    return web.json_response({"reset": True, "status": status})


async def status(request: web.Request) -> web.Response:
    answers = await fan_out(request, "GET", "/status")
    if isinstance(answers, web.Response):
        return answers
    return web.json_response(_merged_status(_relay(request), [a.body for a in answers]))


async def list_rules(request: web.Request) -> web.Response:
    answers = await fan_out(request, "GET", "/rules")
    if isinstance(answers, web.Response):
        return answers
    return web.json_response({"rules": merge.rules([a.body["rules"] for a in answers])})


async def add_rule(request: web.Request) -> web.Response:
    data = await request.read()
    answers = await fan_out(request, "POST", "/rules", data, "application/json")
    if isinstance(answers, web.Response):
        return answers
    ids = {a.body.get("id") for a in answers}
    if len(ids) != 1:
        raise ApiError(
            502,
            "Bad Gateway",
            f"the workers gave the rule different ids ({', '.join(sorted(map(str, ids)))}); "
            "POST /reset puts them back in line",
        )
    return passthrough(answers[0])


async def clear_rules(request: web.Request) -> web.Response:
    answers = await fan_out(request, "DELETE", "/rules")
    if isinstance(answers, web.Response):
        return answers
    return web.json_response({"deleted": max(int(a.body.get("deleted", 0)) for a in answers)})


async def openapi(request: web.Request) -> web.Response:
    from chaosproxy.admin.openapi import document

    return web.json_response(document())


async def events(request: web.Request) -> web.Response:
    since = _int_param(request, "since", 0, 0, 2**62)
    limit = _int_param(request, "limit", 500, 1, 1000)
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


async def timeseries(request: web.Request) -> web.Response:
    """The rows of every worker for the same seconds, summed: a `seconds=N` window is turned
    into `from`/`to` here, so no worker's clock picks a different last second."""
    q = dict(request.query)
    seconds: int | None = None
    if "from" not in q and "to" not in q:
        raw = q.pop("seconds", "60")
        if raw.isdigit() and 1 <= int(raw) <= KEEP_SECONDS:
            seconds = int(raw)
            last = int(time.time()) - 1
            q["from"], q["to"] = str(last - seconds + 1), str(last + 1)
        else:
            q["seconds"] = raw  # a worker says what is wrong with it
    wanted = q.get("histograms", "") in ("1", "true")
    q["histograms"] = "1"
    path = "/stats/timeseries?" + urllib.parse.urlencode(q)
    answers = await fan_out(request, "GET", path)
    if isinstance(answers, web.Response):
        return answers
    body = dict(answers[0].body)
    body["series"] = merge.timeseries([a.body["series"] for a in answers], wanted)
    if seconds is not None:
        body["seconds"] = seconds
    return web.json_response(body)


def routes() -> list[web.RouteDef]:
    """The single proxy's route table (`admin.app.routes`), path for path."""
    return [
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics),
        web.get("/scenarios", from_worker0),
        web.post("/scenarios/stop", stop_scenario),
        web.get("/scenarios/{name}", from_worker0),
        web.put("/scenarios/{name}", put_scenario),
        web.delete("/scenarios/{name}", write_then_first),
        web.post("/scenarios/{name}/start", start_scenario),
        web.get("/status", status),
        web.get("/rules", list_rules),
        web.post("/rules", add_rule),
        web.delete("/rules", clear_rules),
        web.delete("/rules/{id}", write_then_first),
        web.post("/reset", reset),
        web.get("/openapi.json", openapi),
        web.get("/stats/timeseries", timeseries),
        web.get("/events", events),
    ]


def make_relay_app(relay: Relay, settings: Settings) -> web.Application:
    """The admin app on `settings.admin_host:admin_port`, guarded by `settings.admin_token`."""
    access = AdminAccess(host=settings.admin_host, insecure=settings.admin_insecure)
    app = guarded_app(Front(access, RequestIds().next), settings.admin_token, routes())
    app[RELAY] = relay
    return app
