"""A real grpcio server (generic handlers, bytes in and out: no generated code) and a real
chaosproxy in front of it; grpcio clients call through the proxy over h2c."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest

from chaosproxy.common.events import FaultInjected, RequestDone
from chaosproxy.process.runtime import Runtime
from tests.conftest import StartProxy

SERVICE = "test.Echo"
# No proxy settings from the environment: the calls go to the loopback address given.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0), ("grpc.enable_retries", 0)]


@dataclass
class EchoService:
    """What the server saw: metadata of the last call, messages received per call."""

    metadata: list[tuple[str, str]] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)
    calls: int = 0

    def handler(self) -> grpc.GenericRpcHandler:
        async def unary(req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            self.calls += 1
            self.metadata = [(m.key, m.value) for m in ctx.invocation_metadata() or ()]  # type: ignore[attr-defined]
            ctx.set_trailing_metadata((("x-trailer", f"len-{len(req)}"),))
            return b"echo:" + req

        async def client_stream(
            it: AsyncIterator[bytes], ctx: grpc.aio.ServicerContext[Any, Any]
        ) -> bytes:
            self.calls += 1
            parts = [m async for m in it]
            self.received = parts
            return b"|".join(parts)

        async def server_stream(
            req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[bytes]:
            self.calls += 1
            for i in range(int(req or b"3")):
                yield b"part-%d" % i

        async def bidi(
            it: AsyncIterator[bytes], ctx: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[bytes]:
            self.calls += 1
            async for m in it:
                yield b"re:" + m

        async def fail(req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            await ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "upstream says no")
            return b""

        rpcs = {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Collect": grpc.stream_unary_rpc_method_handler(client_stream),
            "Count": grpc.unary_stream_rpc_method_handler(server_stream),
            "Chat": grpc.stream_stream_rpc_method_handler(bidi),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
        }
        return grpc.method_handlers_generic_handler(SERVICE, rpcs)


@dataclass
class GrpcSetup:
    service: EchoService
    upstream: str  # http://127.0.0.1:PORT of the grpcio server
    proxy: Runtime
    channel: grpc.aio.Channel
    done: Seen  # RequestDone
    injected: Seen  # FaultInjected

    def unary(self, method: str = "Unary") -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
        return self.channel.unary_unary(f"/{SERVICE}/{method}")


@pytest.fixture
async def grpc_server() -> AsyncIterator[tuple[EchoService, str]]:
    service = EchoService()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((service.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield service, f"http://127.0.0.1:{port}"
    await server.stop(None)


@pytest.fixture
async def grpc_via_proxy(
    grpc_server: tuple[EchoService, str], start_proxy: StartProxy
) -> AsyncIterator[GrpcSetup]:
    service, url = grpc_server
    rt = await start_proxy(url)
    done, injected = Seen(), Seen()
    rt.bus.subscribe(RequestDone, done.add)
    rt.bus.subscribe(FaultInjected, injected.add)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{rt.proxy_port}", options=CHANNEL_OPTIONS)
    yield GrpcSetup(service, url, rt, channel, done, injected)
    await channel.close()


class Seen(list[Any]):
    """Events as the proxy emits them; `until(n)` waits for the n-th (a stream's RequestDone
    comes when its handler ends, which may be just after the client saw the answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def add(self, ev: Any) -> None:
        self.append(ev)
        self.changed.set()

    async def until(self, n: int) -> None:
        while len(self) < n:
            self.changed.clear()
            await self.changed.wait()
