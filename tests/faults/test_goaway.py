"""`goaway`: parameters, and its HTTP/1.1 stand-in (the GOAWAY frames themselves, with a
frame-level client and grpcio, are in tests/proxy/h2/test_goaway.py)."""

from __future__ import annotations

import asyncio

import pytest

from chaosproxy.common.errors import ConfigError
from chaosproxy.faults import build
from chaosproxy.faults.goaway import GoawayFault
from tests.faults.conftest import StartProxy, Upstream
from tests.faults.fakes import FakeExchange, run


def goaway(params: dict[str, object]) -> GoawayFault:
    fault = build("goaway", params, "fault")
    assert isinstance(fault, GoawayFault)
    return fault


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ("graceful", 0, 1.0)),
        ({"interval": "250ms"}, ("graceful", 0, 0.25)),
        ({"mode": "abrupt", "code": "enhance_your_calm"}, ("abrupt", 11, 1.0)),
        ({"mode": "abrupt", "code": 2}, ("abrupt", 2, 1.0)),
    ],
)
def test_params(params: dict[str, object], expected: tuple[str, int, float]) -> None:
    f = goaway(params)
    assert (f.mode, f.code, f.interval) == expected


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"mode": "rude"}, "mode"),
        ({"code": "NOPE"}, "code"),
        ({"mode": "abrupt", "interval": "1s"}, "interval"),
        ({"intervall": "1s"}, "intervall"),
    ],
)
def test_bad_params_are_located(params: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        goaway(params)
    assert f"fault.goaway.{key}" in str(err.value)


class ConnFake(FakeExchange):
    """A fake stream of a multiplexed connection: it records the GOAWAY asked for."""

    asked: tuple[bool, int, float] | None = None

    def goaway(self, graceful: bool, code: int, interval: float) -> None:
        self.asked = (graceful, code, interval)


async def test_graceful_on_a_stream_lets_it_finish() -> None:
    ex = ConnFake()
    await run(goaway({"interval": "2s"}), ex)
    assert ex.asked == (True, 0, 2.0)
    assert (ex.sent_status, ex.sent_body, ex.upstream_calls) == (200, b"abc", 1)


async def test_abrupt_on_a_stream_is_not_forwarded() -> None:
    ex = ConnFake()
    await run(goaway({"mode": "abrupt", "code": "INTERNAL_ERROR"}), ex)
    assert ex.asked == (False, 2, 1.0)
    assert ex.upstream_calls == 0
    assert ex.events == [("goaway", "abrupt code=2")]


async def test_http11_abrupt_is_a_close_before_forwarding() -> None:
    ex = FakeExchange()
    await run(goaway({"mode": "abrupt"}), ex)
    assert (ex.how_ended, ex.upstream_calls) == ("close", 0)


async def http11_exchange(port: int, path: str) -> bytes:
    """One request on a keep-alive connection; what came back until the proxy closed the
    connection (a read to EOF ends only if it does)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        answer = await reader.read()  # to EOF: only comes if the proxy closes
    finally:
        writer.close()
    return answer


async def test_http11_graceful_answers_with_connection_close_then_closes(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    """A keep-alive client gets the whole answer with `Connection: close`, then EOF: its next
    request goes on a new connection, as after an HTTP/1.1 drain."""
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([build("goaway", {}, "f")])
    answer = await http11_exchange(rt.proxy_port, "/bytes?n=10")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"\r\nConnection: close" in head
    assert len(body) == 10
    assert upstream.hits == ["/bytes?n=10"]


async def test_http11_abrupt_is_an_empty_reply(upstream: Upstream, start_proxy: StartProxy) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([build("goaway", {"mode": "abrupt"}, "f")])
    answer = await http11_exchange(rt.proxy_port, "/bytes")
    assert answer == b""
    assert upstream.hits == []
