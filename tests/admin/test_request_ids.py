"""Every admin answer carries X-Request-Id, and every 400 has one shape of details."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from chaosproxy.admin.app import make_admin_app
from chaosproxy.process.runtime import Runtime
from tests.conftest import StartProxy


async def fetch(
    rt: Runtime, method: str, path: str, headers: dict[str, str] | None = None, data: Any = None
) -> tuple[int, Mapping[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, rt.admin_url + path, headers=headers, data=data) as r,
    ):
        return r.status, CIMultiDict(r.headers), await r.read()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/status", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/nope", 404),
        ("POST", "/rules", 400),
        ("GET", "/scenarios/nope", 404),
    ],
)
async def test_every_admin_answer_carries_a_request_id(
    admin: Runtime, method: str, path: str, status: int
) -> None:
    got, headers, _ = await fetch(admin, method, path)
    assert got == status
    assert headers.get("X-Request-Id")


async def test_request_id_of_an_error_matches_its_body(admin: Runtime) -> None:
    _, headers, body = await fetch(admin, "GET", "/scenarios/nope")
    assert json.loads(body)["error"]["requestId"] == headers["X-Request-Id"]


async def test_the_clients_own_request_id_comes_back(admin: Runtime) -> None:
    _, headers, _ = await fetch(admin, "GET", "/healthz", headers={"X-Request-Id": "trace-42"})
    assert headers["X-Request-Id"] == "trace-42"


async def test_readyz_503_carries_a_request_id(start_proxy: StartProxy, refused_url: str) -> None:
    rt = await start_proxy(refused_url)
    status, headers, _ = await fetch(rt, "GET", "/readyz")
    assert status == 503 and headers.get("X-Request-Id")


@pytest.mark.parametrize(
    ("method", "path", "data", "field"),
    [
        ("GET", "/stats/timeseries?seconds=abc", None, "seconds"),
        ("GET", "/stats/timeseries?run=" + "x" * 65, None, "run"),
        ("GET", "/events?limit=0", None, "limit"),
        ("POST", "/rules", b"", "body"),
        ("POST", "/rules", b"{not json", "body"),
        ("POST", "/rules", b'{"fault": {"error": {}}, "ttl": "soon"}', "ttl"),
        ("POST", "/rules", b'{"fault": {"error": {"status": 99}}}', "rule.fault.error.status"),
        ("POST", "/scenarios/small/start", b'{"seed": "x"}', "seed"),
        ("PUT", "/scenarios/up", b"\xff\xfe", "body"),
    ],
)
async def test_every_400_details_is_a_list_of_field_and_problem(
    admin: Runtime, method: str, path: str, data: bytes | None, field: str
) -> None:
    status, _, raw = await fetch(admin, method, path, data=data)
    details = json.loads(raw)["error"]["details"]
    assert status == 400
    assert isinstance(details, list) and details
    assert all(set(d) == {"field", "problem"} for d in details)
    assert details[0]["field"] == field


async def test_a_400_raised_by_the_framework_has_the_same_details_shape(admin: Runtime) -> None:
    async def raises(request: web.Request) -> web.Response:
        raise web.HTTPBadRequest(reason="Bad Request")

    app = make_admin_app(admin.plane)
    app.router.add_get("/raises", raises)
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/raises")
        body = await r.json()
    assert r.status == 400 and r.headers["X-Request-Id"]
    assert body["error"]["details"] == [{"field": "request", "problem": "Bad Request"}]
