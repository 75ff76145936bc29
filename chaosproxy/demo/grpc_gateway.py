"""The gRPC demo's system under test: a gateway that serves any unary method by calling it on a
primary and, when the primary fails (UNAVAILABLE, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED, or a
cut connection), on a replica — the gRPC twin of `gateway.py`.

chaosproxy sits in front of the primary only (its h2c listener: gRPC's insecure channel speaks
HTTP/2 with prior knowledge). Any other status (NOT_FOUND, INVALID_ARGUMENT...) is the answer,
passed on as is: a replica would say the same. With `failover=False` the primary's failures
reach the clients with the primary's status and message. The metadata a well-behaved service
propagates (`x-chaos-run`, `x-chaos-user`, `x-request-id`) goes on to the primary, as trace
metadata would, so the proxy keeps an experiment's calls apart.

Generic: bytes in, bytes out, any `/package.Service/Method`; no generated code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaosproxy.demo.grpc_support import grpc, grpc_aio

PROPAGATE = ("x-chaos-run", "x-chaos-user", "x-request-id")
OPTIONS = [("grpc.enable_http_proxy", 0), ("grpc.so_reuseport", 0)]
# Statuses that say "this backend failed", not "this request is wrong": worth another backend.
FAILOVER_ON = frozenset({"UNAVAILABLE", "INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED"})


@dataclass
class GrpcGatewayConfig:
    primary: str  # HOST:PORT (the proxy in front of the primary); "": `point_at` tells it later
    replica: str | None = None  # HOST:PORT
    failover: bool = True
    timeout: float = 1.0  # per call to the primary (and to the replica)


def _target(address: str) -> str:
    """`HOST:PORT` from `HOST:PORT` or `http://HOST:PORT`."""
    return address.split("://", 1)[-1].rstrip("/")


class GrpcGateway(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Every unary method: the primary, then the replica when the primary failed."""

    def __init__(self, cfg: GrpcGatewayConfig) -> None:
        self.cfg = cfg
        self.primary: Any = None
        if cfg.primary:
            self.point_at(cfg.primary)
        self.replica = (
            grpc_aio.insecure_channel(_target(cfg.replica), options=OPTIONS)
            if cfg.replica
            else None
        )

    def point_at(self, primary: str) -> None:
        """Call the primary at `primary` (`HOST:PORT` or `http://HOST:PORT`) from now on: a
        harness that learns the proxy's bound address only once it runs sets it here."""
        self.cfg.primary = primary
        self.primary = grpc_aio.insecure_channel(_target(primary), options=OPTIONS)

    def service(self, details: Any) -> Any:
        method = details.method

        async def handle(request: bytes, context: Any) -> bytes:
            return await self.forward(method, request, context)

        return grpc.unary_unary_rpc_method_handler(handle)

    async def forward(self, method: str, request: bytes, context: Any) -> bytes:
        metadata = tuple((k, v) for k, v in (context.invocation_metadata() or ()) if k in PROPAGATE)
        if self.primary is None:
            code, text, answer = "UNAVAILABLE", "the gateway has no primary yet", None
        else:
            code, text, answer = await self._call(self.primary, method, request, metadata)
        served = "primary"
        if code in FAILOVER_ON and self.cfg.failover and self.replica is not None:
            code, text, answer = await self._call(self.replica, method, request, metadata)
            served = "replica"
        context.set_trailing_metadata((("x-served-by", served),))
        if code != "OK":
            await context.abort(getattr(grpc.StatusCode, code), text)
        assert answer is not None
        return answer

    async def _call(
        self, channel: Any, method: str, request: bytes, metadata: tuple[tuple[str, str], ...]
    ) -> tuple[str, str, bytes | None]:
        """(status name, message, answer) of one call; a cut connection is UNAVAILABLE."""
        try:
            answer = await channel.unary_unary(method)(
                request, metadata=metadata, timeout=self.cfg.timeout
            )
        except grpc.RpcError as e:
            code = e.code()
            return (code.name if code is not None else "UNKNOWN"), e.details() or "", None
        return "OK", "", bytes(answer)

    async def close(self) -> None:
        if self.primary is not None:
            await self.primary.close()
        if self.replica is not None:
            await self.replica.close()


async def start_gateway(
    cfg: GrpcGatewayConfig, host: str = "127.0.0.1", port: int = 0
) -> tuple[Any, GrpcGateway, int]:
    """A started `grpc.aio` gateway; (server, gateway, bound port). Stop the server, then
    `await gateway.close()`."""
    gateway = GrpcGateway(cfg)
    server = grpc_aio.server(options=OPTIONS)
    server.add_generic_rpc_handlers((gateway,))
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        await gateway.close()
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    return server, gateway, int(bound)
