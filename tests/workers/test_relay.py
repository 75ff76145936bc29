"""The one admin API in front of workers, against stand-in worker admins on real sockets: what
it takes from whose events, when a trip stops everyone, and what a disagreement looks like."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp import web
from aiohttp.test_utils import TestServer

from chaosproxy.admin import routes
from chaosproxy.admin.declare import Fanout, Route
from chaosproxy.admin.routes import ROUTES
from chaosproxy.process.runtime import Settings
from chaosproxy.workers.fanout import Backend, Relay
from chaosproxy.workers.relay import make_relay_app

SECRET = "per-run-secret"
SETTINGS = Settings(upstream=yarl.URL("http://127.0.0.1:9"))


class StandIn:
    """A worker's admin: canned `/events`, `POST /rules` answered with `rule_status`, and a
    record of every call (with its bearer token)."""

    def __init__(self, events: list[dict[str, Any]], rule_status: int = 201) -> None:
        self.events = events
        self.rule_status = rule_status
        self.calls: list[tuple[str, str, str]] = []

    def app(self) -> web.Application:
        async def record(request: web.Request) -> web.Response:
            self.calls.append(
                (request.method, request.path, request.headers.get("Authorization", ""))
            )
            if request.path == "/events":
                since = int(request.query.get("since", 0))
                found = [e for e in self.events if e["seq"] > since]
                last = self.events[-1]["seq"] if self.events else 0
                body = {"events": found, "next": found[-1]["seq"] if found else since}
                return web.json_response(body | {"last": last, "dropped": False})
            if request.path == "/rules":
                return web.json_response({"id": "r1"}, status=self.rule_status)
            return web.json_response({"stopped": None, "status": {}})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        return app


def ev(seq: int, kind: str, t: float = 100.0, **details: Any) -> dict[str, Any]:
    return {"seq": seq, "t": t, "kind": kind, "scenario": "sc", "phase": "", "details": details}


Start = Callable[[list[StandIn]], Awaitable[Relay]]


@pytest.fixture
async def relay_over() -> AsyncIterator[Start]:
    servers: list[TestServer] = []
    relays: list[Relay] = []

    async def start(stand_ins: list[StandIn]) -> Relay:
        relay = Relay(SECRET)
        for i, s in enumerate(stand_ins):
            server = TestServer(s.app(), host="127.0.0.1")
            await server.start_server()
            servers.append(server)
            relay.backends.append(Backend(i, 1000 + i, str(server.make_url("")), f"w{i}"))
        relays.append(relay)
        return relay

    yield start
    for r in relays:
        await r.close()
    for s in servers:
        await s.close()


async def test_events_are_worker_0s_plus_the_abort_trips_of_the_others(relay_over: Start) -> None:
    w0 = StandIn([ev(1, "scenario_started"), ev(2, "phase_changed")])
    trip = ev(2, "guardrail_tripped", guardrail="abort_if.error_rate", reason="x")
    w1 = StandIn([ev(1, "scenario_started"), trip, ev(3, "scenario_stopped")])
    relay = await relay_over([w0, w1])
    await relay.sweep()
    found, _ = relay.events.since(0)
    assert [(e["kind"], e["details"].get("worker")) for e in found] == [
        ("scenario_started", None),
        ("phase_changed", None),
        ("guardrail_tripped", 1),
    ]
    assert [e["seq"] for e in found] == [1, 2, 3]


async def test_a_trip_on_one_worker_stops_the_scenario_on_every_worker(relay_over: Start) -> None:
    trip = ev(1, "guardrail_tripped", guardrail="abort_if.p99", reason="slow")
    w0, w1 = StandIn([]), StandIn([trip])
    relay = await relay_over([w0, w1])
    await relay.sweep()
    for s in (w0, w1):
        assert ("POST", "/scenarios/stop", f"Bearer {SECRET}") in s.calls
    await relay.sweep()  # the same trip, seen again, stops nothing more
    assert sum(c[1] == "/scenarios/stop" for c in w0.calls) == 1


async def test_a_trip_from_before_the_latest_start_stops_nothing(relay_over: Start) -> None:
    w0 = StandIn([ev(1, "guardrail_tripped", t=100.0, guardrail="max_duration", reason="x")])
    relay = await relay_over([w0])
    relay.last_start = 200.0
    await relay.sweep()
    assert not [c for c in w0.calls if c[1] == "/scenarios/stop"]


async def test_workers_answering_differently_is_a_502_naming_each(relay_over: Start) -> None:
    relay = await relay_over([StandIn([], rule_status=201), StandIn([], rule_status=409)])
    server = TestServer(make_relay_app(relay, SETTINGS), host="127.0.0.1")
    await server.start_server()
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.post(server.make_url("/rules"), json={"fault": {"reset": {}}}) as r,
        ):
            body = await r.json()
    finally:
        await server.close()
    assert r.status == 502
    assert r.headers["X-Request-Id"] == body["error"]["requestId"]
    workers = body["error"]["details"]["workers"]
    assert [(w["worker"], w["status"]) for w in workers] == [(0, 201), (1, 409)]


async def test_a_cross_site_write_is_refused_before_any_worker_sees_it(relay_over: Start) -> None:
    w0 = StandIn([])
    relay = await relay_over([w0])
    server = TestServer(make_relay_app(relay, SETTINGS), host="127.0.0.1")
    await server.start_server()
    try:
        headers = {"Origin": "http://evil.example"}
        async with (
            aiohttp.ClientSession() as s,
            s.post(server.make_url("/scenarios/stop"), headers=headers) as r,
        ):
            assert r.status == 403
    finally:
        await server.close()
    assert w0.calls == []


class Echo:
    """A worker's admin answering every route with `status` and a body each merge can read;
    records the method, path and path with query of every call."""

    BODY: dict[str, Any] = {
        "stopped": None,
        "status": {},
        "rules": [],
        "series": [],
        "id": "r1",
        "deleted": 0,
        "clients": [],
        "count": 0,
        "events": [],
        "next": 0,
        "last": 0,
    }

    def __init__(self, status: int) -> None:
        self.status = status
        self.calls: list[tuple[str, str, str]] = []

    def app(self) -> web.Application:
        async def answer(request: web.Request) -> web.Response:
            url = request.rel_url
            self.calls.append((request.method, url.raw_path, url.raw_path_qs))
            if request.path == "/metrics":
                return web.Response(text="", content_type="text/plain")
            return web.json_response(self.BODY, status=self.status)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        return app


BODIES = {"/scenarios/{name}": b"name: small\n", "/rules": b'{"fault": {"reset": {}}}'}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_the_relay_serves_each_route_as_its_policy_declares(
    route: Route, relay_over: Start
) -> None:
    """Who sees the client's call: worker 0 alone, every worker, or none (the supervisor
    answers itself); and the answer is the route's, not a 404, 405 or 500."""
    echoes = [Echo(next(iter(route.answers))) for _ in range(2)]
    relay = await relay_over(echoes)  # type: ignore[arg-type]
    server = TestServer(make_relay_app(relay, SETTINGS), host="127.0.0.1")
    await server.start_server()
    query = {"limit": 7} if route is routes.EVENTS else None
    path = route.url(query, **{p: {"name": "small", "id": "r1"}[p] for p in route.path_params})
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.request(route.method, server.make_url(path), data=BODIES.get(route.path)) as r,
        ):
            assert r.status in route.answers, await r.text()
    finally:
        await server.close()
    # The supervisor's own answers may read the workers, never pass the client's call on.
    own = route.workers.fanout is Fanout.SUPERVISOR
    wanted = path if own else path.partition("?")[0]
    saw = [any(m == route.method and wanted in (p, qs) for m, p, qs in e.calls) for e in echoes]
    expected = {
        Fanout.SUPERVISOR: [False, False],
        Fanout.WORKER_0: [True, False],
    }.get(route.workers.fanout, [True, True])
    assert saw == expected, [e.calls for e in echoes]
