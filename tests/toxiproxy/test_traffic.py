"""Toxics set through the Toxiproxy API act on real TCP traffic, and show as chaosproxy rules.

A real echo service behind a TCP proxy created through the API; bytes go through real sockets.
Times are only ever lower bounds (a toxic's delay is at least what it says); what a toxic must
not do is shown by bytes (all of them came back), never by a clock.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chaosproxy.common.events import FaultInjected
from chaosproxy.process.runtime import Runtime
from tests.conftest import StartProxy

# pytest-asyncio 1.x deprecates this override for a hook its older 1.x releases lack.
pytestmark = pytest.mark.filterwarnings("ignore:Overriding the .event_loop_policy. fixture")


@pytest.fixture(params=["asyncio", "uvloop"], scope="module")
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Each test on the standard loop and on uvloop, the loop `chaosproxy run` installs."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.EventLoopPolicy()  # type: ignore[no-any-return]
    return asyncio.DefaultEventLoopPolicy()


async def call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, base + path, json=body) as r:
        text = await r.text()
        return r.status, (await r.json(content_type=None)) if text else None


async def make_echo_proxy(base: str, echo: tuple[str, int], name: str = "echo") -> tuple[str, int]:
    status, proxy = await call(
        base,
        "POST",
        "/proxies",
        {"name": name, "upstream": f"{echo[0]}:{echo[1]}", "listen": "127.0.0.1:0"},
    )
    assert status == 201, proxy
    host, _, port = proxy["listen"].rpartition(":")
    return host, int(port)


async def round_trip(address: tuple[str, int], payload: bytes = b"ping\n") -> tuple[bytes, float]:
    """Send `payload`, read until it all came back or the connection ended; the bytes read
    and the seconds it took."""
    started = time.monotonic()  # before the connection: a toxic may act from its accept
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(payload)
        await writer.drain()
        got = b""
        while len(got) < len(payload):
            chunk = await reader.read(65536)
            if not chunk:
                break
            got += chunk
        return got, time.monotonic() - started
    finally:
        writer.close()


async def test_latency_delays_every_reply_by_at_least_the_toxic(
    chaos_toxiproxy: str, echo_server: tuple[str, int]
) -> None:
    address = await make_echo_proxy(chaos_toxiproxy, echo_server)
    got, _ = await round_trip(address)
    assert got == b"ping\n"
    status, toxic = await call(
        chaos_toxiproxy,
        "POST",
        "/proxies/echo/toxics",
        {"type": "latency", "attributes": {"latency": 300}},
    )
    assert status == 200 and toxic["name"] == "latency_downstream"
    got, took = await round_trip(address)
    assert got == b"ping\n"
    assert took >= 0.3
    status, _ = await call(
        chaos_toxiproxy,
        "POST",
        "/proxies/echo/toxics",
        {"type": "latency", "name": "up", "stream": "upstream", "attributes": {"latency": 200}},
    )
    assert status == 200
    got, took = await round_trip(address)
    assert got == b"ping\n"
    assert took >= 0.5  # two toxics, one each way: their delays add up, as in Toxiproxy


async def test_a_latency_never_ends_early(
    chaos_toxiproxy: str, echo_server: tuple[str, int]
) -> None:
    """Each of 60 round trips takes at least the toxic's latency on the client's clock: the
    delay counts from the bytes' arrival on that clock, not the loop's (uvloop's lags it by up
    to a millisecond), and ends on a deadline, not on a loop timer alone (which may fire a
    millisecond early). Seen before: 0.2499 s for a 250 ms latency."""
    address = await make_echo_proxy(chaos_toxiproxy, echo_server)
    body = {"type": "latency", "stream": "downstream", "attributes": {"latency": 4}}
    status, _ = await call(chaos_toxiproxy, "POST", "/proxies/echo/toxics", body)
    assert status == 200
    reader, writer = await asyncio.open_connection(*address)
    short = []
    for i in range(60):
        data = b"ping %02d\n" % i
        sent = time.monotonic()
        writer.write(data)
        assert await reader.readexactly(len(data)) == data
        took = time.monotonic() - sent
        if took < 0.004:
            short.append(took)
    writer.close()
    assert short == []


async def test_limit_data_closes_the_connection_after_n_bytes(
    chaos_toxiproxy: str, echo_server: tuple[str, int]
) -> None:
    address = await make_echo_proxy(chaos_toxiproxy, echo_server)
    payload = bytes(range(100))
    status, _ = await call(
        chaos_toxiproxy,
        "POST",
        "/proxies/echo/toxics",
        {"type": "limit_data", "attributes": {"bytes": 10}},
    )
    assert status == 200
    got, _ = await round_trip(address, payload)
    assert got == payload[:10]  # then the connection ended
    status, _ = await call(chaos_toxiproxy, "DELETE", "/proxies/echo/toxics/limit_data_downstream")
    assert status == 204
    got, _ = await round_trip(address, payload)
    assert got == payload


async def test_a_toxicity_of_zero_never_applies(
    chaos_toxiproxy: str, echo_server: tuple[str, int]
) -> None:
    address = await make_echo_proxy(chaos_toxiproxy, echo_server)
    body = {"type": "limit_data", "toxicity": 0, "attributes": {"bytes": 1}}
    status, _ = await call(chaos_toxiproxy, "POST", "/proxies/echo/toxics", body)
    assert status == 200
    for _ in range(5):
        got, _ = await round_trip(address, b"x" * 50)
        assert got == b"x" * 50


async def test_timeout_holds_the_data_then_closes(
    chaos_toxiproxy: str, echo_server: tuple[str, int]
) -> None:
    address = await make_echo_proxy(chaos_toxiproxy, echo_server)
    body = {"type": "timeout", "attributes": {"timeout": 200}}
    status, _ = await call(chaos_toxiproxy, "POST", "/proxies/echo/toxics", body)
    assert status == 200
    got, took = await round_trip(address)
    assert got == b""  # nothing came back: the connection was closed after the timeout
    assert took >= 0.2


async def test_reset_peer_resets_the_connection(
    chaos_toxiproxy: str, echo_server: tuple[str, int]
) -> None:
    address = await make_echo_proxy(chaos_toxiproxy, echo_server)
    body = {"type": "reset_peer", "attributes": {"timeout": 0}}
    status, _ = await call(chaos_toxiproxy, "POST", "/proxies/echo/toxics", body)
    assert status == 200
    with pytest.raises(ConnectionResetError):
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(b"ping\n")
            await writer.drain()
            while await reader.read(65536):
                pass
            raise AssertionError("the connection ended without a reset")
        finally:
            writer.close()


async def test_disable_refuses_connections_and_enable_listens_on_the_same_port(
    chaos_toxiproxy: str, echo_server: tuple[str, int]
) -> None:
    address = await make_echo_proxy(chaos_toxiproxy, echo_server)
    status, proxy = await call(chaos_toxiproxy, "POST", "/proxies/echo", {"enabled": False})
    assert status == 200 and proxy["enabled"] is False
    assert proxy["listen"] == f"{address[0]}:{address[1]}"
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(*address)
    status, proxy = await call(chaos_toxiproxy, "PATCH", "/proxies/echo", {"enabled": True})
    assert status == 200 and proxy["listen"] == f"{address[0]}:{address[1]}"
    got, _ = await round_trip(address)
    assert got == b"ping\n"


async def test_toxics_are_chaosproxy_rules_in_status_metrics_and_journal(
    start_proxy: StartProxy, echo_server: tuple[str, int], tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    runtime = await start_proxy(
        "http://127.0.0.1:9", toxiproxy_api=("127.0.0.1", 0), journal=str(journal)
    )
    base = f"http://127.0.0.1:{runtime.toxiproxy_port}"
    journaled = asyncio.Event()
    runtime.bus.subscribe(FaultInjected, lambda ev: journaled.set())  # after the journal's
    address = await make_echo_proxy(base, echo_server)
    body = {"type": "limit_data", "attributes": {"bytes": 3}}
    status, _ = await call(base, "POST", "/proxies/echo/toxics", body)
    assert status == 200
    [rule] = runtime.engine.adhoc_rules()
    assert rule.source["toxiproxy"] == "echo/limit_data_downstream"
    got, _ = await round_trip(address, b"abcdef")
    assert got == b"abc"
    for route in ("/rules", "/status"):
        status, shown = await call(runtime.admin_url, "GET", route)
        assert status == 200
        assert '"toxiproxy": "echo/limit_data_downstream"' in json.dumps(shown), route
    async with aiohttp.ClientSession() as s, s.get(runtime.admin_url + "/metrics") as r:
        metrics = await r.text()
    injected = [
        line
        for line in metrics.splitlines()
        if line.startswith("chaosproxy_faults_injected_total") and "limit_data" in line
    ]
    assert injected and float(injected[0].rsplit(" ", 1)[1]) >= 1
    await journaled.wait()
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert any(line.get("fault") == "limit_data" for line in lines), lines


async def test_reset_removes_the_toxics_and_leaves_other_rules(
    chaos_runtime: Runtime, chaos_toxiproxy: str, echo_server: tuple[str, int]
) -> None:
    await make_echo_proxy(chaos_toxiproxy, echo_server)
    other = {"match": {"path": "/x"}, "fault": {"latency": {"delay": "10ms"}}}
    status, added = await call(chaos_runtime.admin_url, "POST", "/rules", other)
    assert status in (200, 201), added
    for kind in ("latency", "limit_data"):
        status, _ = await call(chaos_toxiproxy, "POST", "/proxies/echo/toxics", {"type": kind})
        assert status == 200
    assert len(chaos_runtime.engine.adhoc_rules()) == 3
    status, _ = await call(chaos_toxiproxy, "POST", "/reset")
    assert status == 204
    assert len(chaos_runtime.engine.adhoc_rules()) == 1
    status, toxics = await call(chaos_toxiproxy, "GET", "/proxies/echo/toxics")
    assert toxics == []


async def test_a_toxic_whose_rule_was_deleted_through_the_admin_api_is_gone(
    chaos_runtime: Runtime, chaos_toxiproxy: str, echo_server: tuple[str, int]
) -> None:
    await make_echo_proxy(chaos_toxiproxy, echo_server)
    status, _ = await call(chaos_toxiproxy, "POST", "/proxies/echo/toxics", {"type": "latency"})
    assert status == 200
    status, _ = await call(chaos_runtime.admin_url, "DELETE", "/rules")
    assert status in (200, 204)
    status, toxics = await call(chaos_toxiproxy, "GET", "/proxies/echo/toxics")
    assert toxics == []


async def test_both_servers_treat_the_same_bytes_the_same(
    either_api: str, echo_server: tuple[str, int]
) -> None:
    """The same calls against chaosproxy and the real Toxiproxy: the same bytes come back."""
    base = either_api
    address = await make_echo_proxy(base, echo_server)
    payload = bytes(range(256)) * 4
    body = {"type": "limit_data", "stream": "downstream", "attributes": {"bytes": 100}}
    status, _ = await call(base, "POST", "/proxies/echo/toxics", body)
    assert status == 200
    got, _ = await round_trip(address, payload)
    assert got == payload[:100]
    status, _ = await call(base, "DELETE", "/proxies/echo/toxics/limit_data_downstream")
    assert status == 204
    body = {"type": "latency", "attributes": {"latency": 250}}
    status, _ = await call(base, "POST", "/proxies/echo/toxics", body)
    assert status == 200
    got, took = await round_trip(address, payload)
    assert got == payload
    assert took >= 0.25
