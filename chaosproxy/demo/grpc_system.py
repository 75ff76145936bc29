"""The gRPC demo system in one object: a primary and a replica (`grpc_service.py`) and gateways
(`grpc_gateway.py`), all `grpc.aio` servers on free loopback ports of the running loop.

A gateway made before the experiment's proxy exists (its port is the runner's to choose) is
pointed at it by `on_proxy`, which the runner calls with the proxy once it answers
(`RunOptions.on_proxy`); `chaosproxy demo --experiment demo-grpc-failover` and the real-run
tests build the system this way.
"""

from __future__ import annotations

from typing import Any

from chaosproxy.demo.grpc_gateway import GrpcGateway, GrpcGatewayConfig, start_gateway
from chaosproxy.demo.grpc_service import start_service


class GrpcDemoSystem:
    """Primary, replica and gateways; `primary`/`replica` are `http://HOST:PORT` (h2c)."""

    def __init__(self) -> None:
        self.servers: list[Any] = []
        self.gateways: list[GrpcGateway] = []
        self.unbound: list[GrpcGateway] = []  # gateways waiting for `on_proxy`
        self.primary = self.replica = ""

    async def start(self) -> None:
        for attr in ("primary", "replica"):
            server, port = await start_service()
            self.servers.append(server)
            setattr(self, attr, f"http://127.0.0.1:{port}")

    async def gateway(self, proxy: str | None, failover: bool, **options: Any) -> str:
        """A gateway calling the primary through `proxy` (`http://HOST:PORT`); None: through
        the proxy `on_proxy` is given next. Its address, `http://HOST:PORT`."""
        cfg = GrpcGatewayConfig(proxy or "", self.replica, failover=failover, **options)
        server, gw, port = await start_gateway(cfg)
        self.servers.append(server)
        self.gateways.append(gw)
        if proxy is None:
            self.unbound.append(gw)
        return f"http://127.0.0.1:{port}"

    def on_proxy(self, proxy: Any) -> None:
        """`RunOptions.on_proxy`: the gateways made without a proxy call through this one
        (anything with a `url`)."""
        for gw in self.unbound:
            gw.point_at(str(proxy.url))
        self.unbound.clear()

    async def stop(self) -> None:
        for server in reversed(self.servers):
            await server.stop(None)
        for gw in self.gateways:
            await gw.close()
