"""The `upstream_down` fault: the proxy's own 502 for a refused upstream, byte for byte."""

from __future__ import annotations

import json

import aiohttp
import pytest

from chaosproxy.errors import ConfigError
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
    port = refused_url.rsplit(":", 1)[1]
    real = await start_proxy(refused_url)
    status, ctype, injected = await get(faulted.proxy_url + "/bytes")
    real_status, real_ctype, refused = await get(real.proxy_url + "/bytes")
    assert (status, ctype) == (real_status, real_ctype) == (502, "application/json")
    for body in (injected, refused):
        body["error"].pop("requestId")  # type: ignore[attr-defined]
    # Each names its own upstream: the only difference is the port.
    upstream_port = upstream.url.rsplit(":", 1)[1]
    assert json.dumps(injected).replace(upstream_port, str(port)) == json.dumps(refused)
    assert upstream.hits == []
