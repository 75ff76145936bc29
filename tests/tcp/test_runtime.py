"""A whole runtime with a TCP proxy: a rule posted to the admin API faults its connections, and
`/status` and `/metrics` show the proxy, its connections and its rules."""

from __future__ import annotations

import asyncio

import aiohttp

from chaosproxy.tcp.address import TcpSpec
from tests.conftest import StartProxy
from tests.tcp.conftest import Upstream


async def test_admin_api_rules_status_and_metrics(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    rt = await start_proxy(
        "http://127.0.0.1:9", tcp=(TcpSpec("db", ("127.0.0.1", 0), ("127.0.0.1", upstream.port)),)
    )
    address = rt.tcp.get("db").address
    assert address is not None
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    async with aiohttp.ClientSession(rt.admin_url) as admin:
        async with admin.post(
            "/rules", json={"match": {"tcp": "db"}, "fault": {"latency": {"latency": "100ms"}}}
        ) as r:
            assert r.status == 201
            rule = (await r.json())["id"]
        loop = asyncio.get_running_loop()
        start = loop.time()
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        assert loop.time() - start >= 0.1  # the open connection got the posted rule
        async with admin.get("/status") as r:
            status = await r.json()
        (db,) = status["tcp"]
        assert db["name"] == "db" and db["address"] == address
        assert db["connections"]["open"] == 1 and db["rules"] == [rule]
        assert db["bytes"] == {"upstream": 4, "downstream": 4}
        assert [x["id"] for x in status["rules"]] == [rule]
        async with admin.get("/metrics") as r:
            text = await r.text()
        assert 'chaosproxy_tcp_connections_total{proxy="db"} 1.0' in text
        assert 'chaosproxy_faults_injected_total{fault="latency",phase="",rule="adhoc",' in text
        async with admin.post(
            "/rules", json={"match": {"tcp": "db"}, "fault": {"error": {"status": 503}}}
        ) as r:
            assert r.status == 400
            body = await r.json()
        assert "'error' is an HTTP fault" in str(body)
    writer.close()
