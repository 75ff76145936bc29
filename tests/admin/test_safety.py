"""Every admin route, taken from the app's own router (a new route cannot escape): with a token
set, each needs it but the probes and /metrics; no answer ever carries CORS headers; and driven
with bad input (broken and deep JSON, wrong types, unknown and hostile names, huge bodies, bad
query values) no route answers 5xx, and no error body holds a traceback, a path of the proxy's
disk or the token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sys
from pathlib import Path

import aiohttp
import pytest

import chaosproxy
from chaosproxy.admin.app import make_admin_app
from chaosproxy.process.runtime import Runtime
from tests.conftest import StartProxy

TOKEN = "t0ken-5ecret-value"
# Probes and scrapes carry no secret (docs/admin-api.md); everything else needs the token.
OPEN = {"/healthz", "/readyz", "/metrics"}
SAMPLE = {"name": "small", "id": "r1"}


def every_route(rt: Runtime) -> list[tuple[str, str]]:
    """(method, path template) of every route the admin app serves, HEAD included."""
    app = make_admin_app(rt.plane, TOKEN)
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        assert template, f"a route the test cannot address: {route!r}"
        out.append((route.method, template))
    return sorted(set(out))


def fill(template: str, **values: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), SAMPLE[m.group(1)]), template)


async def send(
    rt: Runtime,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    session: aiohttp.ClientSession | None = None,
) -> tuple[int, dict[str, str], str]:
    async with contextlib.AsyncExitStack() as stack:
        s = session or await stack.enter_async_context(aiohttp.ClientSession())
        kw = {"headers": headers or {}, "data": data}
        async with s.request(method, rt.admin_url + path, **kw) as r:  # type: ignore[arg-type]
            return r.status, dict(r.headers), await r.text()


@pytest.fixture
async def guarded(demo_upstream: str, start_proxy: StartProxy, scenario_dir: Path) -> Runtime:
    return await start_proxy(demo_upstream, scenario_dir=str(scenario_dir), admin_token=TOKEN)


async def test_the_route_table_is_what_this_test_walks(guarded: Runtime) -> None:
    routes = every_route(guarded)
    assert len(routes) >= 18 and ("POST", "/rules") in routes and ("HEAD", "/status") in routes


async def test_every_route_but_probes_and_metrics_needs_the_token(guarded: Runtime) -> None:
    wrong: list[str] = []
    for method, template in every_route(guarded):
        path = fill(template)
        for auth in ({}, {"Authorization": "Bearer guess"}, {"Authorization": f"Basic {TOKEN}"}):
            status, _, body = await send(guarded, method, path, auth)
            expected_open = template in OPEN
            if (status == 401) == expected_open:
                wrong.append(f"{method} {path} {auth or 'no token'} -> {status}")
            if status == 401 and TOKEN in body:
                wrong.append(f"{method} {path}: the 401 shows the token")
        status, _, _ = await send(guarded, method, path, {"Authorization": f"Bearer {TOKEN}"})
        if status == 401:
            wrong.append(f"{method} {path} with the token -> 401")
    assert wrong == []
    assert guarded.engine.adhoc_rules() == []  # nothing without the token changed anything


async def test_a_workers_private_admin_needs_its_token_for_writes_only(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    """`run --workers`: reads of one worker stay open (docs/operations.md); writes only come
    from the supervisor, which holds the run's secret."""
    rt = await start_proxy(demo_upstream, admin_token=TOKEN, worker=0)
    wrong = []
    for method, template in every_route(rt):
        status, _, _ = await send(rt, method, fill(template))
        if (status == 401) != (method in ("POST", "PUT", "DELETE")):
            wrong.append(f"{method} {template} -> {status}")
    assert wrong == []


def test_the_openapi_document_says_which_routes_need_the_token() -> None:
    from chaosproxy.admin.app import routes
    from chaosproxy.admin.openapi import document

    paths = document()["paths"]
    for route in routes():
        op = paths[route.path][route.method.lower()]  # type: ignore[attr-defined]
        assert ("security" in op) == (route.path not in OPEN), route  # type: ignore[attr-defined]


async def test_no_answer_carries_cors_headers(guarded: Runtime, admin: Runtime) -> None:
    found: list[str] = []
    for rt in (guarded, admin):
        for method, template in every_route(rt):
            path = fill(template)
            for origin in ("http://evil.example", rt.admin_url):
                preflight = {
                    "Origin": origin,
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": "authorization, content-type",
                }
                asks = [
                    ("OPTIONS", preflight),
                    (method, {"Origin": origin, "Authorization": f"Bearer {TOKEN}"}),
                ]
                for m, headers in asks:
                    status, got, _ = await send(rt, m, path, headers)
                    cors = [h for h in got if h.lower().startswith("access-control-")]
                    if cors:
                        found.append(f"{m} {path} (Origin {origin}) -> {status} {cors}")
    assert found == []


DEEP_YAML = '{"fault": {"error": {"status": 503, "body": ' + "[" * 600 + "]" * 600 + "}}}"
BODIES: list[bytes] = [
    b"",
    b"{",
    b"\xff\xfe\x00garbage",
    b"null",
    b"[]",
    b'"text"',
    b"1e999",
    b"[" * 100_000,
    DEEP_YAML.encode(),  # valid JSON, deeper than the YAML reader recurses
    b" " * (1024 * 1024 + 1),
    b'{"fault": 5}',
    b'{"fault": {"error": {"status": "x"}}, "ttl": []}',
    b'{"fault": {"error": {}}, "ttl": {"a": 1}}',
    b'{"fault": {"error": {}}, "ttl": "' + b"9" * 5000 + b'"}',
    b'{"fault": {"nope": {}}, "probability": "high", "match": []}',
    b'{"fault": {"error": {}}, "match": {"path_regex": 5, "headers": [1]}}',
    b'{"name": ["a"], "fault": {"latency": {"delay": {"x": 1}}}}',
    b'{"seed": "x", "repeat": 0, "at": "now", "replace": "yes"}',
    b'{"at": 1e300}',
    b'{"unknown": 1}',
    b"name: small\nphases: !!python/object/apply:os.system [id]\n",
    b"name: small\nphases: [{name: p, duration: 1s, include: [/etc/passwd]}]\n",
    b"name: small\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
    b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
    b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e]\n",
    b"#" * (256 * 1024 + 1),
    b"\x00\x01\x02\x03binary",
]
NAMES = ["nope", "broken", "..%2F..%2Fetc%2Fpasswd", "%00", ".hidden", "x" * 5000, "%C3%BCn%C3%AF"]
QUERIES = [
    "?since=abc&limit=-5",
    "?since=99999999999999999999999&limit=1000000",
    "?seconds=1e99",
    "?seconds=0&histograms=2",
    "?from=x&to=y",
    "?from=0&to=99999999999",
    "?run=" + "r" * 100,
]


def leaks(body: str, scenario_dir: Path) -> list[str]:
    secrets = {
        "a traceback": "Traceback",
        "a source line": 'File "',
        "the scenario directory": str(scenario_dir),
        "the package directory": str(Path(chaosproxy.__file__).parent),
        "the interpreter's prefix": sys.prefix,
        "the token": TOKEN,
    }
    return [what for what, text in secrets.items() if text in body]


async def test_bad_input_on_every_route_never_leaks_and_never_fails(
    guarded: Runtime, scenario_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    problems: list[str] = []
    async with aiohttp.ClientSession() as session:

        async def check(method: str, template: str, path: str, body: bytes) -> None:
            status, _, text = await send(guarded, method, path, auth, body, session)
            said = f"{method} {path[:80]} {body[:40]!r} -> {status}"
            if status >= 500 and template != "/readyz":
                problems.append(f"{said} {text[:200]}")
            if status >= 400 and method != "HEAD":
                if not text.startswith('{"error": {'):
                    problems.append(f"{said}: not the JSON error")
                found = leaks(text, scenario_dir)
                if found:
                    problems.append(f"{said} shows {found}")

        for method, template in every_route(guarded):
            bodies = BODIES if method in ("POST", "PUT", "DELETE") else [b""]
            for body in bodies:  # every body on the route's ordinary path
                await check(method, template, fill(template), body)
            odd = {fill(template, name=n, id=n) for n in NAMES}
            odd |= {fill(template) + q for q in QUERIES}
            for path in sorted(odd - {fill(template)}):  # odd paths with a few cheap bodies
                for body in bodies[:7]:
                    await check(method, template, path, body)
    assert problems == []
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    status, _, _ = await send(guarded, "GET", "/healthz")
    assert status == 200


async def test_a_broken_scenario_file_is_named_but_not_where_it_lives(
    guarded: Runtime, scenario_dir: Path
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for method, path in (("GET", "/scenarios/broken"), ("POST", "/scenarios/broken/start")):
        status, _, text = await send(guarded, method, path, auth)
        assert status == 422 and "broken.yaml:2:9: phases: " in text
        assert str(scenario_dir) not in text
    _, _, listing = await send(guarded, "GET", "/scenarios", auth)
    assert '"file": "broken.yaml"' in listing and str(scenario_dir) not in listing


@pytest.mark.parametrize(
    "wire",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: \x00\x01\r\n\r\n",
        b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
        b"POST /rules HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
    ],
)
async def test_malformed_http_to_the_admin_port_gets_no_traceback(
    guarded: Runtime, wire: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.admin_port)
    try:
        writer.write(wire)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 30)
    except ConnectionResetError:
        answer = b""
    finally:
        writer.close()
    assert b"Traceback" not in answer and b'File "' not in answer
    assert TOKEN.encode() not in answer
    status, _, _ = await send(guarded, "GET", "/healthz")
    assert status == 200


async def exchange(port: int, wire: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request written as raw bytes on a real connection: the answer's status, headers
    (lower-case names) and body (the connection is closed by the request's `Connection`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(wire)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)  # a hang guard, not a measure
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("value", [b"Bearer \xff\xfe\xfd", b"Bearer " + TOKEN.encode() + b"\xe9"])
async def test_an_authorization_header_that_is_not_utf8_is_a_401_not_a_500(
    guarded: Runtime, value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Header bytes that are not UTF-8 reach the token check as surrogate escapes: they used to
    raise UnicodeEncodeError there (a 500 and a traceback in the log)."""
    caplog.set_level(logging.WARNING)
    wire = (
        b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
        + value
        + b"\r\nConnection: close\r\n\r\n"
    )
    status, headers, body = await exchange(guarded.admin_port, wire)
    assert status == 401, body
    error = json.loads(body)["error"]
    assert error["code"] == 401 and error["requestId"] == headers["x-request-id"]
    assert headers["www-authenticate"] == 'Bearer realm="chaosproxy"'
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "10.0.0.8", "rebind.test"])
async def test_a_workers_private_admin_answers_only_requests_addressed_to_loopback(
    demo_upstream: str, start_proxy: StartProxy, host: str
) -> None:
    """A worker's reads need no token (one worker can be looked at alone), so its Host is
    checked as a token-less admin's is: a page whose name was re-bound to 127.0.0.1 (DNS
    rebinding) sends its own name and gets a 403, on reads too."""
    rt = await start_proxy(demo_upstream, admin_token=TOKEN, worker=0)
    port = rt.admin_port
    for path in ("/status", "/scenarios", "/events", "/rules"):
        status, _, body = await exchange(
            port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        assert status == 403, (path, body)
        assert "DNS rebinding" in json.loads(body)["error"]["details"]
    for loopback in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        status, _, _ = await exchange(
            port, f"GET /status HTTP/1.1\r\nHost: {loopback}\r\nConnection: close\r\n\r\n".encode()
        )
        assert status == 200, loopback


async def test_readyz_open_without_the_token_never_shows_the_upstreams_credentials(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    upstream = demo_upstream.replace("http://", "http://svc-user:hunter2@")
    rt = await start_proxy(upstream, admin_token=TOKEN)
    status, _, text = await send(rt, "GET", "/readyz")
    assert status == 200
    assert json.loads(text)["upstream"] == demo_upstream.replace("http://", "http://***@")
    assert "hunter2" not in text and "svc-user" not in text
    status, _, text = await send(rt, "GET", "/status", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and "hunter2" not in text
