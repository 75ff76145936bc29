"""Each admin route is declared once (`admin/routes.py`), and everything that speaks it derives
from that declaration: the single proxy's router and the `--workers` relay's (walked, not
trusted), the OpenAPI document, the typed client's calls (made, and recorded by a stand-in),
the `ctl` operations (parsed by the real CLI parser), and the routes table of the docs."""

from __future__ import annotations

import argparse
import inspect
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yarl
from aiohttp import web
from aiohttp.test_utils import TestServer

from chaosproxy.admin import handlers, routes
from chaosproxy.admin.app import make_admin_app
from chaosproxy.admin.client import AdminClient
from chaosproxy.admin.declare import Access, Fanout, Merge, Route
from chaosproxy.admin.openapi import TABLE_BEGIN, TABLE_END, document, routes_table
from chaosproxy.admin.routes import ROUTES
from chaosproxy.process.runtime import Runtime, Settings
from chaosproxy.workers.fanout import Relay
from chaosproxy.workers.relay import MERGES, OWN, make_relay_app, relay_handler
from tests.admin.conftest import call

DOCS = Path(__file__).resolve().parents[2] / "docs" / "admin-api.md"
DECLARED = {(r.method, r.path) for r in ROUTES}


def served(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route the app's router holds, HEAD included."""
    out = set()
    for route in app.router.routes():
        assert route.resource is not None, route
        out.add((route.method, route.resource.canonical))
    return out


def declared_with_head() -> set[tuple[str, str]]:
    return DECLARED | {("HEAD", p) for m, p in DECLARED if m == "GET"}


def relay_app() -> web.Application:
    return make_relay_app(Relay("secret"), Settings(upstream=yarl.URL("http://127.0.0.1:9")))


# ---------------------------------------------------------------- the routers


async def test_the_single_proxy_serves_exactly_the_declared_routes(admin: Runtime) -> None:
    assert served(make_admin_app(admin.plane)) == declared_with_head()


def test_the_relay_serves_exactly_the_declared_routes() -> None:
    assert served(relay_app()) == declared_with_head()


async def test_a_route_missing_from_the_table_is_not_served(
    admin: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router is built from the table and nothing else: take a route out of it and the
    same app answers that route with the JSON 404 of an unknown path."""
    monkeypatch.setattr(routes, "ROUTES", [r for r in ROUTES if r is not routes.DELETE_RULE])
    monkeypatch.setattr("chaosproxy.admin.app.ROUTES", routes.ROUTES)
    app = make_admin_app(admin.plane)
    assert ("DELETE", "/rules/{id}") not in served(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        import aiohttp

        async with aiohttp.ClientSession() as s:
            async with s.delete(server.make_url("/rules/r1")) as r:
                body = await r.json()
                assert r.status == 404 and body["error"]["requestId"]
            async with s.delete(server.make_url("/rules")) as r:  # its neighbour still is
                assert r.status == 200
    finally:
        await server.close()


def test_every_handler_of_the_single_proxy_is_a_declared_route() -> None:
    """A handler nobody declared would never be served: there is none."""
    found = {
        name
        for name, fn in vars(handlers).items()
        if inspect.iscoroutinefunction(fn)
        and fn.__module__ == handlers.__name__
        and list(inspect.signature(fn).parameters) == ["request"]
    }
    assert found == {r.name for r in ROUTES}


def test_routes_are_declared_once_and_name_their_handlers_once() -> None:
    assert len(DECLARED) == len(ROUTES)
    assert len({r.name for r in ROUTES}) == len(ROUTES)


def test_a_declaration_whose_access_contradicts_its_method_is_refused() -> None:
    from chaosproxy.admin.declare import Workers

    with pytest.raises(ValueError, match="access"):
        Route("x", "POST", "/x", "x", Access.READ, Workers(Fanout.WRITE_ALL))
    with pytest.raises(ValueError, match="every worker"):
        Route("x", "DELETE", "/x", "x", Access.WRITE, Workers(Fanout.WORKER_0))


# ---------------------------------------------------------------- the relay's policies


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_route_has_a_relay_policy_the_relay_implements(route: Route) -> None:
    policy = route.workers
    if policy.fanout is Fanout.SUPERVISOR:
        assert policy.merge in OWN
    elif policy.fanout is not Fanout.WORKER_0:
        assert policy.merge in MERGES
    assert callable(relay_handler(route))


def test_every_merge_is_implemented_and_used() -> None:
    assert set(MERGES) | set(OWN) == set(Merge)
    assert {r.workers.merge for r in ROUTES} <= set(Merge)


# ---------------------------------------------------------------- OpenAPI


def test_openapi_documents_each_declared_route_as_declared() -> None:
    paths = document()["paths"]
    assert {(m.upper(), p) for p, ops in paths.items() for m in ops} == DECLARED
    for r in ROUTES:
        op = paths[r.path][r.method.lower()]
        assert op["operationId"] == r.name and op["summary"] == r.summary
        assert ("security" in op) == (r.access is not Access.OPEN), r.path
        params = {(p["in"], p["name"]) for p in op.get("parameters", [])}
        expected = {("path", n) for n in r.path_params} | {("query", p.name) for p in r.query}
        assert params == expected, r.path
        assert ("requestBody" in op) == (r.body is not None)
        assert {str(s) for s in (*r.answers, *r.errors)} <= set(op["responses"])


def test_every_declared_schema_is_valid_json_schema() -> None:
    from jsonschema import Draft202012Validator

    for r in ROUTES:
        for p in r.query:
            Draft202012Validator.check_schema(p.schema)
        if r.body is not None:
            Draft202012Validator.check_schema(r.body.schema)


def test_the_start_body_schema_takes_what_the_start_handler_takes() -> None:
    """The declared body of a start and `control.start_options` agree on the fields."""
    from chaosproxy.admin.control import START_KEYS

    assert routes.START.body is not None
    assert set(routes.START.body.schema["properties"]) == set(START_KEYS)


async def test_the_served_document_is_the_generated_one(admin: Runtime) -> None:
    status, doc = await call(admin, "GET", "/openapi.json")
    assert status == 200 and doc == document()


# ---------------------------------------------------------------- the typed client


class Recorder:
    """A stand-in admin API: records each call and answers what every client method reads."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, set[str]]] = []

    def app(self) -> web.Application:
        async def record(request: web.Request) -> web.Response:
            self.calls.append((request.method, request.rel_url.raw_path, set(request.query)))
            return web.json_response({"status": "ok", "deleted": 0, "series": [], "events": []})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        return app


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    server = TestServer(rec.app(), host="127.0.0.1")
    await server.start_server()
    yield rec, str(server.make_url(""))
    await server.close()


def template_of(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)) + "$")


# What each client method is called with here (the others take no argument).
CLIENT_ARGS: dict[str, tuple[Any, ...]] = {
    "upload": ("sent", "name: sent\n"),
    "start": ("sent",),
    "timeseries": (100, 160, "run-1", True),
    "stats_clients": ("run-1",),
}
NOT_OPERATIONS = {"request", "call", "call_route", "close"}


def client_methods() -> set[str]:
    return {
        name
        for name, fn in vars(AdminClient).items()
        if inspect.iscoroutinefunction(fn) and not name.startswith("_")
    } - NOT_OPERATIONS


@pytest.mark.parametrize("route", [r for r in ROUTES if r.client], ids=lambda r: r.client)
async def test_each_client_method_calls_its_declared_route(
    route: Route, recorder: tuple[Recorder, str]
) -> None:
    rec, url = recorder
    assert route.client is not None
    async with AdminClient(url) as c:
        await getattr(c, route.client)(*CLIENT_ARGS.get(route.client, ()))
    assert len(rec.calls) == 1
    method, path, query = rec.calls[0]
    assert method == route.method and template_of(route.path).match(path), rec.calls
    assert query <= {p.name for p in route.query}, "a query parameter the route does not declare"


def test_every_client_operation_is_declared_by_a_route() -> None:
    assert client_methods() == {r.client for r in ROUTES if r.client}


# ---------------------------------------------------------------- ctl


def parse(*argv: str) -> argparse.Namespace:
    from chaosproxy.cli import build_parser

    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("route", [r for r in ROUTES if r.command], ids=lambda r: r.name)
def test_each_command_parses_to_its_declared_route(route: Route, tmp_path: Path) -> None:
    from chaosproxy.cli.ctl import request_for

    assert route.command is not None
    words = list(route.command.words)
    args = [f"value-{p}" for p in route.path_params]
    if route.body is not None and route.body.content_type == "application/json" and args == []:
        rule = tmp_path / "rule.yaml"
        rule.write_text("fault: {reset: {}}\n")
        args.append(str(rule))
    ns = parse(*words, *args)
    if route.command.ctl is None:  # a command of its own (`chaosproxy health`)
        assert ns.command == words[0]
        return
    got, path, _ = request_for(ns)
    assert got is route
    assert path == route.url(**{p: f"value-{p}" for p in route.path_params})


def test_every_ctl_operation_is_a_declared_route() -> None:
    """Walk ctl's parser: each operation it accepts is bound to a declared route."""
    from chaosproxy.cli import build_parser

    def leaves(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> list[Any]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return [(words, parser.get_default("route"))]
        return [x for name, p in subs[0].choices.items() for x in leaves(p, (*words, name))]

    top = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    found = leaves(top.choices["ctl"], ("ctl",))
    assert all(isinstance(r, Route) for _, r in found), found
    assert {(w, r.name) for w, r in found} == {
        (r.command.words, r.name) for r in ROUTES if r.command and r.command.ctl
    }


# ---------------------------------------------------------------- docs


def test_the_docs_routes_table_is_the_generated_one() -> None:
    text = DOCS.read_text(encoding="utf-8")
    begin, end = text.index(TABLE_BEGIN), text.index(TABLE_END) + len(TABLE_END)
    assert text[begin:end] == routes_table(), (
        "docs/admin-api.md's routes table is stale; paste the output of "
        "`python -c 'from chaosproxy.admin.openapi import routes_table; print(routes_table())'`"
    )


def test_the_docs_describe_every_declared_route() -> None:
    text = DOCS.read_text(encoding="utf-8")
    body = text[text.index(TABLE_END) :]  # beyond the generated table
    missing = [f"{r.method} {r.path}" for r in ROUTES if f"{r.method} {r.path}" not in body]
    assert missing == []
