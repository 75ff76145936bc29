"""The `error` fault: unit (params) and end to end through a real proxy and upstream."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import web

from chaosproxy.common.errors import ConfigError
from chaosproxy.faults import build
from chaosproxy.faults.error import ErrorFault
from tests.conftest import StartProxy


def test_defaults_to_500_with_the_proxy_error_shape() -> None:
    fault = build("error", {}, "fault")
    assert isinstance(fault, ErrorFault)
    assert fault.status == 500 and fault.body is None


def test_status_outside_400_599_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"fault\.error\.status: must be ≤ 599"):
        build("error", {"status": 700}, "fault")


def test_unknown_key_suggests_the_nearest() -> None:
    with pytest.raises(
        ConfigError, match=r"fault\.error\.stauts: unknown key; did you mean status"
    ):
        build("error", {"stauts": 503}, "fault")


async def test_client_receives_injected_status_and_json_body(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(demo_upstream)
    rt.engine.add_rule([build("error", {"status": 503}, "fault")])
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/api/items") as r:
        body = json.loads(await r.read())
    assert r.status == 503
    assert body["error"]["code"] == 503
    assert body["error"]["requestId"] == r.headers["X-Request-Id"]


async def test_after_upstream_reaches_the_service_but_client_sees_error(
    start_upstream: object, start_proxy: StartProxy
) -> None:
    hits: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="created", status=201)

    app = web.Application()
    app.router.add_post("/orders", handler)
    upstream = await start_upstream(app)  # type: ignore[operator]
    rt = await start_proxy(upstream)
    rt.engine.add_rule([build("error", {"status": 500, "after_upstream": True}, "fault")])
    async with aiohttp.ClientSession() as s, s.post(rt.proxy_url + "/orders", data=b"x") as r:
        await r.read()
    assert r.status == 500
    assert hits == ["/orders"]


# ---------------------------------------------------------------- {request_id} in custom bodies

PAYMENT_ERROR = {
    "error": {"code": 500, "message": "missing configuration", "requestId": "{request_id}"}
}


async def test_json_body_placeholder_becomes_the_request_id_of_the_response(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(demo_upstream)
    rt.engine.add_rule([build("error", {"status": 500, "body": PAYMENT_ERROR}, "fault")])
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/api/items") as r:
        body = json.loads(await r.read())
    assert r.status == 500 and r.headers["Content-Type"] == "application/json"
    assert body["error"]["requestId"] == r.headers["X-Request-Id"] != "{request_id}"
    assert body["error"]["message"] == "missing configuration"


async def test_client_request_id_with_quotes_stays_valid_json(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(demo_upstream)
    rt.engine.add_rule([build("error", {"body": PAYMENT_ERROR}, "fault")])
    rid = 'abc"}, "x": "1'
    async with (
        aiohttp.ClientSession() as s,
        s.get(rt.proxy_url + "/api/items", headers={"X-Request-Id": rid}) as r,
    ):
        body = json.loads(await r.read())
    assert body == {"error": {"code": 500, "message": "missing configuration", "requestId": rid}}


async def test_text_body_placeholder_becomes_the_request_id(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(demo_upstream)
    rt.engine.add_rule(
        [build("error", {"status": 503, "body": "busy (ref {request_id})"}, "fault")]
    )
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/api/items") as r:
        text = await r.text()
    assert text == f"busy (ref {r.headers['X-Request-Id']})"


def test_placeholder_in_a_key_or_without_braces_is_left_as_written() -> None:
    fault = build("error", {"body": {"{request_id}": "request_id", "n": 1}}, "fault")
    assert isinstance(fault, ErrorFault)
    assert fault.body_parts == ()
    assert json.loads(fault.body or b"") == {"{request_id}": "request_id", "n": 1}


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"Content-Length": "0"}, "Content-Length is the proxy's to write"),
        ({"Transfer-Encoding": "chunked"}, "Transfer-Encoding is the proxy's to write"),
        ({"X-Evil": "a\r\n\r\nHTTP/1.1 200 OK"}, "must be one line"),
        ({"Bad Name": "x"}, "is not a valid header name"),
        ({"X-Nul": "a\x00b"}, "must be one line"),
    ],
)
def test_headers_that_would_desync_the_client_connection_are_refused(
    headers: dict[str, str], problem: str
) -> None:
    """A rule's headers could make a response lie about where it ends: the next response on
    the keep-alive connection would then be attacker-chosen bytes. Refused when compiled."""
    from chaosproxy.common.errors import ConfigError
    from chaosproxy.faults.error import ErrorFault

    with pytest.raises(ConfigError, match=problem):
        ErrorFault.from_params({"status": 500, "headers": headers}, "fault.error")
