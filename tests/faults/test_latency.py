"""The `latency` fault: parameters, sampling, and measured delay through a real proxy."""

from __future__ import annotations

import asyncio
import random
import statistics
import time

import aiohttp
import pytest

from chaosproxy.common.clock import FakeClock
from chaosproxy.common.errors import ConfigError
from chaosproxy.common.events import FaultInjected
from chaosproxy.faults import build
from chaosproxy.faults.base import Reply
from chaosproxy.faults.latency import LatencyFault
from tests.faults.conftest import StartProxy, Upstream
from tests.faults.fakes import FakeExchange, run


def latency(params: dict[str, object]) -> LatencyFault:
    fault = build("latency", params, "fault")
    assert isinstance(fault, LatencyFault)
    return fault


# ---------------------------------------------------------------- parameters


def test_fixed_delay_accepts_units() -> None:
    assert latency({"delay": "250ms"}).sample(random.Random(1)) == pytest.approx(0.25)


def test_p99_below_median_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"fault\.latency\.p99: must be ≥ median"):
        latency({"distribution": "lognormal", "median": "200ms", "p99": "100ms"})


def test_distribution_without_its_parameters_says_what_is_missing() -> None:
    with pytest.raises(ConfigError, match=r"fault\.latency\.stddev: missing: .*mean and stddev"):
        latency({"distribution": "normal", "mean": "1s"})


def test_parameter_of_another_distribution_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"fault\.latency\.median: does not apply"):
        latency({"delay": "1s", "median": "1s"})


def test_bad_duration_names_key_and_value() -> None:
    with pytest.raises(ConfigError, match=r"fault\.latency\.delay: expected a duration.*'fast'"):
        latency({"delay": "fast"})


def test_jitter_larger_than_delay_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"fault\.latency\.jitter: must be ≤ delay"):
        latency({"delay": "100ms", "jitter": "200ms"})


def test_unknown_at_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"fault\.latency\.at: must be one of request, response"):
        latency({"delay": "1s", "at": "later"})


# ---------------------------------------------------------------- sampling


def test_jitter_stays_within_plus_minus() -> None:
    f, rng = latency({"delay": "100ms", "jitter": "20ms"}), random.Random(7)
    samples = [f.sample(rng) for _ in range(2000)]
    assert 0.08 <= min(samples) < 0.085 and 0.115 < max(samples) <= 0.12


def test_uniform_stays_within_min_and_max() -> None:
    f, rng = latency({"distribution": "uniform", "min": "1s", "max": "2s"}), random.Random(3)
    samples = [f.sample(rng) for _ in range(2000)]
    assert min(samples) >= 1.0 and max(samples) <= 2.0


def test_normal_is_never_negative() -> None:
    f = latency({"distribution": "normal", "mean": "10ms", "stddev": "20ms"})
    rng = random.Random(5)
    assert min(f.sample(rng) for _ in range(2000)) == 0.0


def test_max_clamps_every_sample() -> None:
    f = latency({"distribution": "lognormal", "median": "100ms", "p99": "2s", "max": "500ms"})
    rng = random.Random(11)
    assert max(f.sample(rng) for _ in range(5000)) == 0.5


def test_lognormal_has_the_configured_median_and_p99() -> None:
    f = latency({"distribution": "lognormal", "median": "200ms", "p99": "1s"})
    rng = random.Random(42)
    samples = sorted(f.sample(rng) for _ in range(10_000))
    assert statistics.median(samples) == pytest.approx(0.2, rel=0.05)
    assert samples[int(0.99 * len(samples))] == pytest.approx(1.0, rel=0.05)


def test_same_seed_gives_the_same_delays() -> None:
    f = latency({"distribution": "normal", "mean": "100ms", "stddev": "30ms"})
    a, b = random.Random(9), random.Random(9)
    assert [f.sample(a) for _ in range(5)] == [f.sample(b) for _ in range(5)]


# ---------------------------------------------------------------- apply (fake clock)


async def test_request_delay_happens_before_forwarding() -> None:
    clock = FakeClock()
    ex = FakeExchange(clock)
    task = asyncio.create_task(run(latency({"delay": "2s"}), ex))
    await clock.wait_sleepers(1)
    assert ex.upstream_calls == 0
    clock.advance(2.0)
    await task
    assert ex.upstream_calls == 1 and ex.sent_body == b"abc"
    assert ex.events == [("latency", "delay=2.000")]


async def test_response_delay_happens_after_the_upstream_answered() -> None:
    clock = FakeClock()
    ex = FakeExchange(clock)
    task = asyncio.create_task(run(latency({"delay": "1s", "at": "response"}), ex))
    await clock.wait_sleepers(1)
    assert ex.upstream_calls == 1 and ex.sent_status is None
    clock.advance(1.0)
    await task
    assert ex.sent_status == 200


async def test_response_delay_keeps_the_reply() -> None:
    clock = FakeClock()
    ex = FakeExchange(clock, upstream=(Reply(404, "Not Found", []), [b"nope"]))
    task = asyncio.create_task(run(latency({"delay": "1s", "at": "response"}), ex))
    await clock.wait_sleepers(1)
    clock.advance(1.0)
    await task
    assert (ex.sent_status, ex.sent_body) == (404, b"nope")


# ---------------------------------------------------------------- end to end


async def test_client_measures_the_configured_delay(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([latency({"delay": "300ms"})])
    async with aiohttp.ClientSession() as s:
        t0 = time.monotonic()
        async with s.get(rt.proxy_url + "/bytes?n=10") as r:
            await r.read()
        took = time.monotonic() - t0
    assert r.status == 200
    assert took >= 0.3  # no upper bound: a loaded machine only ever adds time


async def test_response_latency_reaches_the_upstream_first(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([latency({"delay": "400ms", "at": "response"})])
    delays: list[FaultInjected] = []
    rt.bus.subscribe(FaultInjected, delays.append)
    async with aiohttp.ClientSession() as s:
        t0 = time.monotonic()
        async with s.get(rt.proxy_url + "/bytes?n=10") as r:
            head_after = time.monotonic() - t0
            assert upstream.hits == ["/bytes?n=10"]  # the upstream answered first
            await r.read()
    # The one delay the fault took happened before the head: the body had none left to wait.
    assert [d.outcome for d in delays] == ["delay=0.400"]
    assert head_after >= 0.4


async def test_measured_delay_includes_the_wait_before_headers(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([latency({"delay": "300ms", "at": "response"})])
    async with aiohttp.ClientSession() as s:
        t0 = time.monotonic()
        async with s.get(rt.proxy_url + "/bytes?n=10") as r:
            took = time.monotonic() - t0
            assert r.status == 200
    assert took >= 0.3
