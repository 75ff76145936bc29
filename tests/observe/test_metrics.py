"""Prometheus metrics: values after known requests, bounded labels, live gauges."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from chaosproxy.common.events import EventBus, FaultInjected, RequestDone, StateChanged, StateKind
from chaosproxy.faults import build
from chaosproxy.faults.base import Gauge
from chaosproxy.observe.metrics import Metrics
from tests.conftest import StartProxy


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def done(method: str = "GET", status: int = 200, **kw: object) -> RequestDone:
    base: dict[str, object] = dict(
        t=0.0, duration=0.01, upstream_duration=0.005, upstream_error=None, injected=False
    )
    base.update(kw)
    return RequestDone(method=method, status=status, **base)  # type: ignore[arg-type]


def test_unknown_methods_are_counted_as_other() -> None:
    m = Metrics()
    m.on_request(done("BREW"))
    m.on_request(done("GET"))
    s = samples(m)
    assert (
        s[
            (
                "chaosproxy_requests_total",
                (("code", "200"), ("method", "OTHER"), ("protocol", "http/1.1")),
            )
        ]
        == 1
    )
    assert (
        s[
            (
                "chaosproxy_requests_total",
                (("code", "200"), ("method", "GET"), ("protocol", "http/1.1")),
            )
        ]
        == 1
    )


def test_a_reset_without_status_is_code_zero_and_an_upstream_error() -> None:
    m = Metrics()
    m.on_request(done(status=0, upstream_error="reset", upstream_duration=None))
    s = samples(m)
    assert (
        s[
            (
                "chaosproxy_requests_total",
                (("code", "0"), ("method", "GET"), ("protocol", "http/1.1")),
            )
        ]
        == 1
    )
    assert s[("chaosproxy_upstream_errors_total", (("reason", "reset"),))] == 1
    assert s[("chaosproxy_upstream_duration_seconds_count", ())] == 0


def test_faults_injected_carry_scenario_phase_rule_and_fault() -> None:
    m = Metrics()
    m.on_fault(FaultInjected(0.0, "id", "GET", "/x", "sc", "ph", "r1", "latency", "delay=1"))
    labels = (("fault", "latency"), ("phase", "ph"), ("rule", "r1"), ("scenario", "sc"))
    assert samples(m)[("chaosproxy_faults_injected_total", labels)] == 1


def test_ad_hoc_and_header_faults_share_bounded_rule_labels() -> None:
    m = Metrics()
    for rule in ("r1", "r2", "r3"):
        m.on_fault(FaultInjected(0.0, "id", "GET", "/x", "", "", rule, "error", "status=500"))
    m.on_fault(FaultInjected(0.0, "id", "GET", "/x", "", "", "", "reset", "at=request"))
    rules = {
        dict(labels)["rule"]
        for name, labels in samples(m)
        if name == "chaosproxy_faults_injected_total"
    }
    assert rules == {"adhoc", "header"}


def test_scenario_active_follows_phase_changes_and_stop() -> None:
    m = Metrics()
    bus = EventBus()
    m.attach(bus)
    bus.emit(StateChanged(0.0, StateKind.SCENARIO_STARTED, "sc", "warmup"))
    bus.emit(StateChanged(1.0, StateKind.PHASE_CHANGED, "sc", "broken"))
    s = samples(m)
    assert s[("chaosproxy_scenario_active", (("phase", "warmup"), ("scenario", "sc")))] == 0
    assert s[("chaosproxy_scenario_active", (("phase", "broken"), ("scenario", "sc")))] == 1
    bus.emit(StateChanged(2.0, StateKind.SCENARIO_STOPPED, "sc"))
    s = samples(m)
    assert s[("chaosproxy_scenario_active", (("phase", "broken"), ("scenario", "sc")))] == 0


def test_reload_failures_are_counted() -> None:
    m = Metrics()
    bus = EventBus()
    m.attach(bus)
    assert samples(m)[("chaosproxy_config_reload_errors_total", ())] == 0
    bus.emit(StateChanged(0.0, StateKind.RELOAD_FAILED, "sc"))
    assert samples(m)[("chaosproxy_config_reload_errors_total", ())] == 1


def test_pool_gauges_are_read_from_fault_state_at_scrape_time() -> None:
    gauges = (Gauge("pool_in_use", "in use", 4.0), Gauge("pool_waiting", "waiting", 7.0))
    m = Metrics(pools=lambda: [("db-pool", gauges), ("no-state", ())])
    s = samples(m)
    assert s[("chaosproxy_pool_in_use", (("rule", "db-pool"),))] == 4
    assert s[("chaosproxy_pool_waiting", (("rule", "db-pool"),))] == 7


def test_inflight_gauge_reads_the_live_count() -> None:
    m = Metrics(inflight=lambda: 3)
    assert samples(m)[("chaosproxy_inflight_requests", ())] == 3


async def test_task_gauge_counts_the_proxy_loops_tasks(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(demo_upstream)
    gate = asyncio.Event()
    before = samples(rt.metrics)[("chaosproxy_tasks", ())]
    extra = [asyncio.create_task(gate.wait()) for _ in range(5)]  # on the proxy loop (this one)
    during = samples(rt.metrics)[("chaosproxy_tasks", ())]
    gate.set()
    await asyncio.gather(*extra)
    assert during - before == 5 and before >= 1
    assert samples(rt.metrics)[("chaosproxy_tasks", ())] < during


async def test_metrics_through_a_real_proxy_after_known_requests(
    start_upstream: object, start_proxy: StartProxy
) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/ok", ok)
    upstream = await start_upstream(app)  # type: ignore[operator]
    rt = await start_proxy(upstream)
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            async with s.get(rt.proxy_url + "/ok") as r:
                await r.read()
        async with s.post(rt.proxy_url + "/ok", data=b"x") as r:
            await r.read()
        rt.engine.add_rule([build("error", {"status": 503}, "fault")])
        async with s.get(rt.proxy_url + "/ok") as r:
            await r.read()
        async with s.get(rt.admin_url + "/metrics") as r:
            text = await r.text()
            assert r.headers["Content-Type"].startswith("text/plain")
    got = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            got[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    assert (
        got[
            (
                "chaosproxy_requests_total",
                (("code", "200"), ("method", "GET"), ("protocol", "http/1.1")),
            )
        ]
        == 3
    )
    assert (
        got[
            (
                "chaosproxy_requests_total",
                (("code", "200"), ("method", "POST"), ("protocol", "http/1.1")),
            )
        ]
        == 1
    )
    assert (
        got[
            (
                "chaosproxy_requests_total",
                (("code", "503"), ("method", "GET"), ("protocol", "http/1.1")),
            )
        ]
        == 1
    )
    assert got[("chaosproxy_request_duration_seconds_count", ())] == 5
    assert got[("chaosproxy_upstream_duration_seconds_count", ())] == 4
    injected = [k for k in got if k[0] == "chaosproxy_faults_injected_total"]
    assert len(injected) == 1 and ("fault", "error") in injected[0][1]
    assert got[("chaosproxy_inflight_requests", ())] == 0


async def test_two_proxies_in_one_process_keep_separate_registries(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    a = await start_proxy(demo_upstream)
    b = await start_proxy(demo_upstream)
    async with aiohttp.ClientSession() as s, s.get(a.proxy_url + "/api/items") as r:
        await r.read()
    assert b"chaosproxy_requests_total{" not in b.metrics.exposition()
    assert b"chaosproxy_requests_total{" in a.metrics.exposition()
