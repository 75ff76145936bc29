"""The `upstream_down` fault: the proxy's own 502 for a refused upstream, byte for byte."""

from __future__ import annotations

import json

import aiohttp
import pytest

from chaosproxy.common.errors import ConfigError
from chaosproxy.faults import build
from tests.faults.conftest import StartProxy, Upstream


def test_takes_no_parameters() -> None:
    with pytest.raises(ConfigError, match=r"fault\.upstream_down\.status: unknown key"):
        build("upstream_down", {"status": 503}, "fault")


async def get(url: str) -> tuple[int, str, dict[str, object]]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, r.headers["Content-Type"], json.loads(await r.read())


async def test_injected_refusal_looks_like_a_real_one(
    upstream: Upstream, start_proxy: StartProxy, refused_url: str
) -> None:
    faulted = await start_proxy(upstream.url)
    faulted.engine.add_rule([build("upstream_down", {}, "fault")])
    real = await start_proxy(refused_url)
    status, ctype, injected = await get(faulted.proxy_url + "/bytes")
    real_status, real_ctype, refused = await get(real.proxy_url + "/bytes")
    assert (status, ctype) == (real_status, real_ctype) == (502, "application/json")
    for body in (injected, refused):
        body["error"].pop("requestId")  # type: ignore[attr-defined]
    assert injected == refused
    assert upstream.hits == []


async def test_neither_refusal_tells_the_client_the_upstream_address(
    upstream: Upstream, start_proxy: StartProxy, refused_url: str
) -> None:
    faulted = await start_proxy(upstream.url)
    faulted.engine.add_rule([build("upstream_down", {}, "fault")])
    real = await start_proxy(refused_url)
    for proxy, target in ((faulted, upstream.url), (real, refused_url)):
        _, _, body = await get(proxy.proxy_url + "/bytes")
        text = json.dumps(body)
        assert target.rsplit(":", 1)[1] not in text and "127.0.0.1" not in text
        assert body["error"]["details"] == (  # type: ignore[index]
            "cannot connect to the upstream: Connection refused"
        )


async def scrape(admin_url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession() as s, s.get(admin_url + "/metrics") as r:
        text = await r.text()
    return {
        s.name + str(sorted(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


async def test_an_injected_refusal_counts_as_a_fault_not_as_an_upstream_error(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([build("upstream_down", {}, "fault")])
    status, _, _ = await get(rt.proxy_url + "/bytes")
    m = await scrape(rt.admin_url)
    assert status == 502
    assert m["chaosproxy_upstream_errors_total[('reason', 'refused')]"] == 0
    injected = [v for k, v in m.items() if k.startswith("chaosproxy_faults_injected_total")]
    assert injected == [1.0]
    assert "('fault', 'upstream_down')" in next(
        k for k in m if k.startswith("chaosproxy_faults_injected_total")
    )


async def test_a_real_refusal_counts_as_an_upstream_error(
    start_proxy: StartProxy, refused_url: str
) -> None:
    rt = await start_proxy(refused_url)
    status, _, _ = await get(rt.proxy_url + "/bytes")
    m = await scrape(rt.admin_url)
    assert status == 502
    assert m["chaosproxy_upstream_errors_total[('reason', 'refused')]"] == 1
