"""Requests whose one fault is a delay before forwarding, waited for by a timer and then relayed
(delayed.py): the same bytes, events and accounting as the awaiting path, never early, and a
client gone, a guardrail or a missing idle connection handled as there."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, cast

import pytest

from chaosproxy.common.clock import SYSTEM_CLOCK
from chaosproxy.common.events import FaultInjected, RequestDone
from chaosproxy.common.wake import Deadlines
from chaosproxy.engine.decide import Decision
from chaosproxy.faults import build
from chaosproxy.process.runtime import Runtime
from chaosproxy.proxy.downstream.delayed import DelayedRelay
from chaosproxy.proxy.downstream.request import RequestHead
from chaosproxy.proxy.upstream.forward import Forwarder
from chaosproxy.proxy.upstream.interface import Upstream
from tests.conftest import StartProxy
from tests.proxy.downstream.test_relay import (
    OK,
    Client,
    StartUp,
    upstream,
    without_id,
)
from tests.proxy.downstream.test_relay import (
    Upstream as StandIn,
)
from tests.proxy.rawhttp import reset

__all__ = ["upstream"]  # the fixture, shared with test_relay.py


def events(rt: Runtime) -> tuple[list[FaultInjected], list[RequestDone], asyncio.Event]:
    faults: list[FaultInjected] = []
    done: list[RequestDone] = []
    ended = asyncio.Event()
    rt.bus.subscribe(FaultInjected, faults.append)
    rt.bus.subscribe(RequestDone, lambda ev: (done.append(ev), ended.set()))
    return faults, done, ended


async def ok_proxy(
    start_proxy: StartProxy, upstream: StartUp, **options: Any
) -> tuple[StandIn, Runtime]:
    """A proxy (`options`: its settings) in front of an upstream that answers every request OK."""
    up = await upstream(lambda head, n: OK)
    return up, await start_proxy(up.url, **options)


def injected(rt: Runtime) -> asyncio.Event:
    """Set at each `FaultInjected`: the proxy records a delay just before its wait begins (in the
    same callback), so once it is set the request is waiting."""
    seen = asyncio.Event()
    rt.bus.subscribe(FaultInjected, lambda ev: seen.set())
    return seen


def waiting(rt: Runtime) -> list[DelayedRelay]:
    """The delayed relays waiting on the proxy's connections now."""
    assert rt._proxy is not None
    return [c.relay for c in rt._proxy.connections if isinstance(c.relay, DelayedRelay)]


async def warmed(rt: Runtime, delay: str) -> Client:
    """A client whose first request opened the upstream connection, then a rule delaying
    every request by `delay`."""
    client = await Client.open(rt.proxy_url)
    await client.get()
    rt.engine.add_rule([build("latency", {"delay": delay}, "f")])
    return client


@dataclass
class Waiting:
    """A proxy with one request waiting out its delay, and what tells how it ends."""

    up: StandIn
    rt: Runtime
    done: list[RequestDone]
    ended: asyncio.Event  # set at the waiting request's end
    client: Client


async def one_waiting(start_proxy: StartProxy, upstream: StartUp, **options: Any) -> Waiting:
    """A client whose second request waits out a 5 s delay now (its first opened the upstream
    connection)."""
    up, rt = await ok_proxy(start_proxy, upstream, **options)
    _, done, ended = events(rt)
    client = await warmed(rt, "5s")
    ended.clear()
    seen = injected(rt)
    client.writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(10):
        await seen.wait()
    assert waiting(rt)
    return Waiting(up, rt, done, ended, client)


def without_mark(answer: bytes) -> bytes:
    return b"\r\n".join(
        line for line in answer.split(b"\r\n") if not line.startswith(b"X-Chaos-Injected:")
    )


async def test_a_delayed_answer_has_the_bytes_of_an_untouched_one_and_the_fault_s_events(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    up, rt = await ok_proxy(start_proxy, upstream, mark_injected=True)
    faults, done, _ = events(rt)
    client = await Client.open(rt.proxy_url)
    untouched = await client.get("/a")
    rt.engine.add_rule([build("latency", {"delay": "30ms"}, "f")])
    sent = time.monotonic()
    client.writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    delayed = await client.answer()
    elapsed = time.monotonic() - sent
    client.close()
    assert without_mark(without_id(delayed)) == without_id(untouched)
    assert b"\r\nX-Chaos-Injected: latency; scenario=-; phase=-; rule=r1\r\n" in delayed
    assert elapsed >= 0.03  # never early: the delay counts from the request's arrival
    assert [(f.fault, f.outcome, f.rule, f.path) for f in faults] == [
        ("latency", "delay=0.030", "r1", "/a")
    ]
    last = done[-1]
    assert last.injected and last.status == 200 and last.duration >= 0.03
    assert last.request_id == faults[0].request_id
    # The upstream's part begins after the delay: the whole request outlasts it by the delay.
    assert last.upstream_duration is not None
    assert last.duration - last.upstream_duration >= 0.03
    assert rt.core.load.inflight == 0 and len(up.heads) == 2


async def test_a_delayed_request_waits_on_a_timer_with_no_task(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    w = await one_waiting(start_proxy, upstream)
    up, rt, done, ended, client = w.up, w.rt, w.done, w.ended, w.client
    assert rt._proxy is not None
    [conn] = [c for c in rt._proxy.connections if isinstance(c.relay, DelayedRelay)]
    assert conn.task is None and len(up.heads) == 1  # no task answers it: the timer will
    client.close()  # gone during the wait: the request ends, and never goes upstream
    async with asyncio.timeout(10):
        await ended.wait()
    assert done[-1].status == 0 and done[-1].injected and len(up.heads) == 1
    assert rt.core.load.inflight == 0 and not waiting(rt)


async def test_a_client_reset_during_the_delay_frees_its_guardrail_slot(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    w = await one_waiting(start_proxy, upstream, max_active_faults=5)
    up, rt, ended, client = w.up, w.rt, w.ended, w.client
    assert rt.guardrails.active == 1
    reset(client.writer)
    async with asyncio.timeout(10):
        await ended.wait()
    assert rt.guardrails.active == 0 and len(up.heads) == 1
    again = await Client.open(rt.proxy_url)  # the proxy keeps serving
    rt.engine.clear_rules()
    assert (await again.get()).startswith(b"HTTP/1.1 200 Fine")
    again.close()


async def test_a_client_that_finishes_sending_during_the_delay_is_closed_unanswered(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    # As on the awaiting path: a fault's wait ends when the client gives up (its EOF).
    w = await one_waiting(start_proxy, upstream)
    up, done, ended, client = w.up, w.done, w.ended, w.client
    client.writer.write_eof()
    async with asyncio.timeout(10):
        rest = await client.reader.read()
        await ended.wait()
    assert rest == b"" and done[-1].status == 0 and len(up.heads) == 1


async def test_with_no_idle_upstream_connection_at_the_deadline_it_is_forwarded_once(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    # The first request of a fresh proxy finds the pool empty at its deadline: the awaiting
    # path takes it up with its delay waited already (one delay, one event, one slot).
    up, rt = await ok_proxy(start_proxy, upstream, mark_injected=True, max_active_faults=5)
    faults, done, _ = events(rt)
    rt.engine.add_rule([build("latency", {"delay": "20ms"}, "f")])
    client = await Client.open(rt.proxy_url)
    answer = await client.get("/first")
    client.close()
    assert answer.startswith(b"HTTP/1.1 200 Fine") and answer.endswith(b"hello")
    assert b"\r\nX-Chaos-Injected: latency; " in answer
    assert len(faults) == 1 and len(up.heads) == 1
    assert done[-1].injected and done[-1].duration >= 0.02
    assert rt.guardrails.active == 0 and rt.core.load.inflight == 0


async def test_a_full_guardrail_refuses_the_delay_once(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    _, rt = await ok_proxy(start_proxy, upstream, max_active_faults=1)
    faults, done, _ = events(rt)
    first, second = await Client.open(rt.proxy_url), await Client.open(rt.proxy_url)
    await first.get()
    await second.get()
    rt.engine.add_rule([build("latency", {"delay": "300ms"}, "f")])
    seen = injected(rt)
    first.writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(10):
        await seen.wait()
    assert waiting(rt)
    # The slot is taken: the second request goes through untouched, refused once.
    answer = await second.get("/b")
    assert answer.startswith(b"HTTP/1.1 200 Fine") and not done[-1].injected
    assert rt.guardrails.skipped == 1 and len(faults) == 1
    assert (await first.answer()).startswith(b"HTTP/1.1 200 Fine")
    assert done[-1].injected and rt.guardrails.active == 0
    first.close()
    second.close()


class _Conn:
    eof = False
    upstream_started = False

    def relaying(self, relay: object, started: bool = True) -> None:
        self.upstream_started = started


class _Site:
    """A proxy whose upstream records when each delayed relay sent its request."""

    clock = SYSTEM_CLOCK
    guardrails = None

    def __init__(self) -> None:
        self.sent: list[tuple[str, float]] = []
        self.forwarder = Forwarder(cast(Upstream, object()))  # `lines` never calls it
        self.deadlines = Deadlines()
        self.expected = 0  # how many sends set `all_sent`
        self.all_sent = asyncio.Event()

    def relay(self, target: str, arrival: float) -> DelayedRelay:
        """A delayed relay of a GET for `target` that arrived at `arrival`, on a stand-in
        connection."""
        return DelayedRelay(
            self,  # type: ignore[arg-type]
            RequestHead("GET", target, "1.1", [], "127.0.0.1", arrival),
            _Conn(),  # type: ignore[arg-type]
            "id",
            lambda r: None,
            None,
            Decision("", "", "r1", ()),
        )

    def send_now(
        self, method: str, target: str, lines: bytes, has_host: bool, sink: object
    ) -> None:
        """Records the send; None ("no idle connection") ends the relay there."""
        self.sent.append((target, time.monotonic()))
        if len(self.sent) == self.expected:
            self.all_sent.set()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_delayed_relays_send_never_before_their_deadline_and_in_its_order(loop: str) -> None:
    # A wave of 30 requests arriving one after another, delayed 20 ms each, then 30 with
    # delays of 30 to 59 ms: each goes upstream at or after its deadline (uvloop's timers may
    # end a millisecond early: never sent then), in deadline order, equal ones as they came.
    import uvloop

    async def main() -> None:
        site = _Site()
        due: dict[str, float] = {}
        delays = [(f"/eq{i}", 0.02) for i in range(30)]
        delays += [(f"/m{i}", 0.03 + (i * 7 % 30) / 1000) for i in range(30)]
        for target, delay in delays:
            relay = site.relay(target, time.monotonic())
            head = relay.req
            due[target] = head.t0 + delay
            relay.wait(due[target])
        site.expected = len(delays)
        async with asyncio.timeout(10):
            await site.all_sent.wait()
        assert all(at >= due[target] for target, at in site.sent)
        order = sorted(due, key=lambda t: (due[t], list(due).index(t)))
        assert [target for target, _ in site.sent] == order
        site.deadlines.close()

    if loop == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


async def test_relays_cancelled_during_long_delays_do_not_hold_memory_until_their_deadline() -> (
    None
):
    site = _Site()
    now = time.monotonic()
    relays = []
    for i in range(300):
        relay = site.relay(f"/{i}", now)
        relay.wait(now + 3600)
        relays.append(relay)
    for relay in relays[:250]:  # their clients gave up
        relay.cancel()
    assert len(site.deadlines) == 50
    assert len(site.deadlines._heap) < 150  # rebuilt without most of the gone ones
    for relay in relays[250:]:
        relay.cancel()
    assert len(site.deadlines) == 0 and site.sent == []
    site.deadlines.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_wave_of_delayed_requests_is_answered_never_early(loop: str) -> None:
    # 24 connections whose requests arrive together, delayed 15 ms each: every answer comes
    # at least 15 ms after its request was sent, each request went upstream once.
    import uvloop

    from chaosproxy.process.settings import Settings

    async def main() -> None:
        import yarl

        order: list[bytes] = []

        async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await r.readuntil(b"\r\n\r\n")
                    order.append(head.split(b" ")[1])
                    w.write(OK)
            except (asyncio.IncompleteReadError, ConnectionError):
                w.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        rt = Runtime(
            Settings(
                upstream=yarl.URL(f"http://127.0.0.1:{port}"),
                listen_host="127.0.0.1",
                listen_port=0,
                admin_host="127.0.0.1",
                admin_port=0,
            )
        )
        await rt.start()
        try:
            clients = [await Client.open(rt.proxy_url) for _ in range(24)]
            await asyncio.gather(*(c.get() for c in clients))  # the pool holds connections
            rt.engine.add_rule([build("latency", {"delay": "15ms"}, "f")])
            order.clear()

            async def one(i: int, c: Client) -> float:
                sent = time.monotonic()
                c.writer.write(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
                assert (await c.answer()).startswith(b"HTTP/1.1 200")
                return time.monotonic() - sent

            took = await asyncio.gather(*(one(i, c) for i, c in enumerate(clients)))
            assert min(took) >= 0.015
            assert sorted(order) == sorted(b"/%d" % i for i in range(24))
            for c in clients:
                c.close()
        finally:
            await rt.stop()
            server.close()

    if loop == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


async def test_a_delay_on_the_awaiting_path_waits_in_the_proxy_s_deadlines_too(
    start_proxy: StartProxy, upstream: StartUp
) -> None:
    # A request with a body is not relayed: its exchange's delay waits in the same heap, never
    # early, and a client gone during it leaves nothing there.
    up, rt = await ok_proxy(start_proxy, upstream)
    _, done, ended = events(rt)
    client = await warmed(rt, "20ms")
    answer = await client.get("/p", "POST", "Content-Length: 2\r\n\r\nhi")
    assert answer.startswith(b"HTTP/1.1 200 Fine") and done[-1].injected
    assert done[-1].duration >= 0.02 and len(rt.core.deadlines) == 0
    rt.engine.clear_rules()
    rt.engine.add_rule([build("latency", {"delay": "1h"}, "f")])
    ended.clear()
    seen = injected(rt)
    client.writer.write(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    async with asyncio.timeout(10):
        await seen.wait()
    assert len(rt.core.deadlines) == 1
    client.close()
    async with asyncio.timeout(10):
        await ended.wait()
    assert len(rt.core.deadlines) == 0 and len(up.heads) == 2


async def test_a_delayed_request_that_cannot_be_sent_closes_its_client_and_the_proxy_serves_on(
    start_proxy: StartProxy, upstream: StartUp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug of ours at the deadline (here: the send raises) is logged; the client's connection
    # closes without a stack trace, the request ends once, and the next one is served.
    _, rt = await ok_proxy(start_proxy, upstream)
    _, done, ended = events(rt)
    client = await warmed(rt, "10ms")

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    # (the core's sender, not a method of the relay: the compiled relay's methods are fixed)
    monkeypatch.setattr(rt.core, "send_now", broken)
    ended.clear()
    client.writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(10):
        rest = await client.reader.read()
        await ended.wait()
    assert rest == b"" and done[-1].status == 0 and rt.core.load.inflight == 0
    monkeypatch.undo()
    again = await Client.open(rt.proxy_url)
    assert (await again.get()).startswith(b"HTTP/1.1 200 Fine")
    again.close()
