"""Admin routes that do not depend on scenarios: health, metrics, OpenAPI, stats, errors, auth."""

from __future__ import annotations

import re

import aiohttp
import pytest
import yarl

from chaosproxy.admin.app import routes
from chaosproxy.admin.openapi import document
from chaosproxy.common.errors import UsageError
from chaosproxy.process.runtime import Runtime, Settings
from tests.admin.conftest import call
from tests.conftest import StartProxy


async def test_healthz_answers_ok(admin: Runtime) -> None:
    assert await call(admin, "GET", "/healthz") == (200, {"status": "ok"})


async def test_metrics_is_prometheus_text(admin: Runtime) -> None:
    status, text = await call(admin, "GET", "/metrics")
    assert status == 200 and "chaosproxy_inflight_requests" in text


def test_openapi_documents_exactly_the_route_table() -> None:
    table = {(r.method.lower(), r.path) for r in routes()}  # type: ignore[attr-defined]
    documented = {(m, p) for p, ops in document()["paths"].items() for m in ops}
    assert documented == table


async def test_openapi_json_is_served(admin: Runtime) -> None:
    status, doc = await call(admin, "GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")


async def test_unknown_route_is_a_json_404_with_request_id(admin: Runtime) -> None:
    status, body = await call(admin, "GET", "/nope")
    assert status == 404 and body["error"]["code"] == 404 and body["error"]["requestId"]


async def test_timeseries_returns_one_row_per_second(admin: Runtime) -> None:
    status, body = await call(admin, "GET", "/stats/timeseries?seconds=5")
    assert status == 200 and len(body["series"]) == 5
    assert set(body["series"][0]) >= {"t", "requests", "errors", "error_rate", "p50", "p99"}


async def test_timeseries_counts_proxied_requests(admin: Runtime) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            async with s.get(admin.proxy_url + "/api/items") as r:
                await r.read()
    # The current second is reported once complete: read the ring directly for "now + 1".
    rows = admin.stats.series(admin.clock.wall() + 1, 2)
    assert sum(r["requests"] for r in rows) == 3


async def test_timeseries_rejects_bad_seconds_naming_the_field(admin: Runtime) -> None:
    status, body = await call(admin, "GET", "/stats/timeseries?seconds=abc")
    assert status == 400 and body["error"]["details"][0]["field"] == "seconds"


async def test_mutating_route_without_token_is_401_when_a_token_is_set(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(demo_upstream, admin_token="s3cret")
    status, body = await call(rt, "POST", "/reset")
    assert status == 401 and body["error"]["code"] == 401


async def test_wrong_token_is_401(demo_upstream: str, start_proxy: StartProxy) -> None:
    rt = await start_proxy(demo_upstream, admin_token="s3cret")
    status, _ = await call(rt, "POST", "/reset", token="guess")
    assert status == 401


async def test_right_token_is_accepted(demo_upstream: str, start_proxy: StartProxy) -> None:
    rt = await start_proxy(demo_upstream, admin_token="s3cret")
    status, _ = await call(rt, "POST", "/reset", token="s3cret")
    assert status == 200


async def test_probes_and_metrics_need_no_token(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(demo_upstream, admin_token="s3cret")
    assert [(await call(rt, "GET", p))[0] for p in ("/healthz", "/readyz", "/metrics")] == [200] * 3
    assert (await call(rt, "GET", "/status"))[0] == 401  # every other read needs it (test_safety)


def _exposed(upstream: str, **kw: object) -> Runtime:
    settings = Settings(
        upstream=yarl.URL(upstream),
        listen_host="127.0.0.1",
        listen_port=0,
        admin_host="0.0.0.0",
        admin_port=0,
        **kw,  # type: ignore[arg-type]
    )
    return Runtime(settings)


async def test_non_loopback_admin_without_token_is_refused(demo_upstream: str) -> None:
    rt = _exposed(demo_upstream)
    with pytest.raises(UsageError, match=re.escape("without --admin-token")):
        await rt.start()
    await rt.stop()


@pytest.mark.parametrize("kw", [{"admin_insecure": True}, {"admin_token": "t"}])
async def test_non_loopback_admin_starts_with_a_token_or_insecure(
    demo_upstream: str, kw: dict[str, object]
) -> None:
    rt = _exposed(demo_upstream, **kw)
    await rt.start()
    try:
        assert (await call(rt, "GET", "/healthz"))[0] == 200
    finally:
        await rt.stop()
