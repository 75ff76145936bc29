"""Per-request fault headers (Envoy's names + x-chaos-fault) and X-Chaos-Injected marking."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from chaosproxy.faults import build
from chaosproxy.proxy.downstream.header_faults import HeaderFaults
from tests.conftest import StartProxy

Seen = list[dict[str, str]]


@pytest.fixture
async def echo_upstream(
    start_upstream: Callable[[web.Application], Awaitable[str]],
) -> tuple[str, Seen]:
    seen: Seen = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text="hello " * 100)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return await start_upstream(app), seen


async def fetch(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        await r.read()
        return r.status, dict(r.headers)


# ---------------------------------------------------------------- unit


def test_no_fault_headers_means_no_faults() -> None:
    assert HeaderFaults().faults({"accept": "*/*"}, random.Random(1)) is None


@pytest.mark.parametrize("value", ["abc", "", "-1", "99", "700", "5OO", "²"])
def test_abort_values_that_do_not_parse_mean_no_fault(value: str) -> None:
    h = {"x-envoy-fault-abort-request": value}
    assert HeaderFaults().faults(h, random.Random(1)) is None


def test_abort_header_builds_an_error_fault_with_that_status() -> None:
    faults = HeaderFaults().faults({"x-envoy-fault-abort-request": "503"}, random.Random(1))
    assert faults is not None and faults[0] == build("error", {"status": 503}, "x")


def test_percentage_header_is_capped_by_configuration() -> None:
    hf = HeaderFaults(max_percentage=10)
    rng = random.Random(7)
    h = {"x-envoy-fault-abort-request": "500", "x-envoy-fault-abort-request-percentage": "100"}
    hits = sum(hf.faults(h, rng) is not None for _ in range(2000))
    assert 120 < hits < 280  # ~10 %, not 100 %


def test_zero_percentage_never_injects() -> None:
    h = {"x-envoy-fault-abort-request": "500", "x-envoy-fault-abort-request-percentage": "0"}
    assert all(HeaderFaults().faults(h, random.Random(i)) is None for i in range(50))


def test_unknown_chaos_fault_means_no_fault() -> None:
    assert HeaderFaults().faults({"x-chaos-fault": "explode"}, random.Random(1)) is None


# ---------------------------------------------------------------- end to end


async def test_abort_header_is_ignored_unless_enabled(
    echo_upstream: tuple[str, Seen], start_proxy: StartProxy
) -> None:
    upstream, _ = echo_upstream
    rt = await start_proxy(upstream)
    status, _ = await fetch(rt.proxy_url + "/x", {"x-envoy-fault-abort-request": "503"})
    assert status == 200


async def test_abort_header_is_honoured_when_enabled(
    echo_upstream: tuple[str, Seen], start_proxy: StartProxy
) -> None:
    upstream, seen = echo_upstream
    rt = await start_proxy(upstream, allow_header_faults=True)
    status, _ = await fetch(rt.proxy_url + "/x", {"x-envoy-fault-abort-request": "503"})
    assert status == 503 and seen == []


@pytest.mark.parametrize("enabled", [False, True])
async def test_fault_headers_are_stripped_before_the_upstream(
    echo_upstream: tuple[str, Seen], start_proxy: StartProxy, enabled: bool
) -> None:
    upstream, seen = echo_upstream
    rt = await start_proxy(upstream, allow_header_faults=enabled)
    headers = {
        "x-envoy-fault-abort-request": "503",
        "x-envoy-fault-abort-request-percentage": "0",
        "x-envoy-fault-delay-request-percentage": "0",
        "x-envoy-fault-delay-request": "5",
        "x-chaos-fault": "nonsense",
        "x-keep": "1",
    }
    status, _ = await fetch(rt.proxy_url + "/x", headers)
    assert status == 200
    names = {k.lower() for k in seen[0]}
    assert "x-keep" in names
    assert not {n for n in names if n.startswith("x-envoy-fault") or n == "x-chaos-fault"}


async def test_delay_header_delays_the_response(
    echo_upstream: tuple[str, Seen], start_proxy: StartProxy
) -> None:
    upstream, _ = echo_upstream
    rt = await start_proxy(upstream, allow_header_faults=True)
    t0 = rt.clock.monotonic()
    status, _ = await fetch(rt.proxy_url + "/x", {"x-envoy-fault-delay-request": "200"})
    assert status == 200 and rt.clock.monotonic() - t0 >= 0.19


async def test_chaos_fault_reset_resets_the_connection(
    echo_upstream: tuple[str, Seen], start_proxy: StartProxy
) -> None:
    upstream, _ = echo_upstream
    rt = await start_proxy(upstream, allow_header_faults=True)
    with pytest.raises(aiohttp.ClientError):
        await fetch(rt.proxy_url + "/x", {"x-chaos-fault": "reset"})


# ---------------------------------------------------------------- X-Chaos-Injected


async def test_mark_injected_names_fault_and_rule(
    echo_upstream: tuple[str, Seen], start_proxy: StartProxy
) -> None:
    upstream, _ = echo_upstream
    rt = await start_proxy(upstream, mark_injected=True)
    rule = rt.engine.add_rule([build("error", {"status": 500}, "fault")])
    status, headers = await fetch(rt.proxy_url + "/x", {})
    assert status == 500
    assert headers["X-Chaos-Injected"].startswith("error; ")
    assert f"rule={rule.id}" in headers["X-Chaos-Injected"]


async def test_unfaulted_responses_are_not_marked(
    echo_upstream: tuple[str, Seen], start_proxy: StartProxy
) -> None:
    upstream, _ = echo_upstream
    rt = await start_proxy(upstream, mark_injected=True)
    _, headers = await fetch(rt.proxy_url + "/x", {})
    assert "X-Chaos-Injected" not in headers


async def test_no_mark_without_the_flag(
    echo_upstream: tuple[str, Seen], start_proxy: StartProxy
) -> None:
    upstream, _ = echo_upstream
    rt = await start_proxy(upstream)
    rt.engine.add_rule([build("error", {"status": 500}, "fault")])
    _, headers = await fetch(rt.proxy_url + "/x", {})
    assert "X-Chaos-Injected" not in headers


async def test_trace_context_passes_through_a_faulted_request_untouched(
    echo_upstream: tuple[str, Seen], start_proxy: StartProxy
) -> None:
    upstream, seen = echo_upstream
    rt = await start_proxy(upstream, mark_injected=True)
    rt.engine.add_rule([build("error", {"status": 502, "after_upstream": True}, "fault")])
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ts = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    status, headers = await fetch(rt.proxy_url + "/x", {"traceparent": tp, "tracestate": ts})
    assert status == 502 and headers["X-Chaos-Injected"].startswith("error")
    assert seen[0]["traceparent"] == tp and seen[0]["tracestate"] == ts


async def test_header_faults_count_against_max_active_faults(
    echo_upstream: tuple[str, Seen], start_proxy: StartProxy
) -> None:
    upstream, _ = echo_upstream
    rt = await start_proxy(upstream, allow_header_faults=True, max_active_faults=1)
    rt.guardrails.active = 1  # one faulted request already in flight
    status, _ = await fetch(rt.proxy_url + "/x", {"x-envoy-fault-abort-request": "503"})
    assert status == 200 and rt.guardrails.skipped == 1


# ---------------------------------------------------------------- the rest, end to end


@pytest.fixture
async def big_upstream(start_upstream: Callable[[web.Application], Awaitable[str]]) -> str:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 32 * 1024)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return await start_upstream(app)


async def test_throughput_header_paces_the_body(big_upstream: str, start_proxy: StartProxy) -> None:
    rt = await start_proxy(big_upstream, allow_header_faults=True)
    t0 = rt.clock.monotonic()
    async with (
        aiohttp.ClientSession() as s,
        s.get(rt.proxy_url + "/x", headers={"x-envoy-fault-throughput-response": "32"}) as r,
    ):
        body = await r.read()
    elapsed = rt.clock.monotonic() - t0
    assert len(body) == 32 * 1024
    assert elapsed >= 0.85  # 32 KiB at 32 KiB/s: paced, never sooner (no upper bound: a busy
    # machine may be slower, and a body that never came would fail on its length above)


async def test_chaos_fault_truncate_cuts_the_body_short(
    big_upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(big_upstream, allow_header_faults=True)
    async with (
        aiohttp.ClientSession() as s,
        s.get(rt.proxy_url + "/x", headers={"x-chaos-fault": "truncate=100"}) as r,
    ):
        assert r.headers["Content-Length"] == str(32 * 1024)
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()


async def test_chaos_fault_hang_sends_nothing_for_its_duration(
    echo_upstream: tuple[str, Seen], start_proxy: StartProxy
) -> None:
    upstream, seen = echo_upstream
    rt = await start_proxy(upstream, allow_header_faults=True)
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        with pytest.raises(TimeoutError):
            async with s.get(rt.proxy_url + "/x", headers={"x-chaos-fault": "hang=5000"}) as r:
                await r.read()
    assert seen == []  # the upstream never heard of it
