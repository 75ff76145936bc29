"""The gRPC demo gateway, the system the gRPC demo experiments judge: with failover, a primary
failing UNAVAILABLE (or gone) is replaced by the replica; without, its status reaches the
client; an answer such as NOT_FOUND is passed on, never failed over. Real grpc.aio servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

from chaosproxy.demo.grpc_gateway import GrpcGatewayConfig, start_gateway
from chaosproxy.demo.grpc_service import GET, start_service


class Backend:
    """A `demo.Items/Get` answering with its name, or aborting with `fail`; keeps metadata."""

    def __init__(self, name: str, fail: grpc.StatusCode | None = None) -> None:
        self.name, self.fail = name, fail
        self.metadata: list[dict[str, str]] = []

    async def get(self, request: bytes, context: Any) -> bytes:
        self.metadata.append(dict(context.invocation_metadata()))
        if self.fail is not None:
            await context.abort(self.fail, f"{self.name} says no")
        return self.name.encode() + b":" + request

    async def start(self) -> tuple[Any, str]:
        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            "demo.Items", {"Get": grpc.unary_unary_rpc_method_handler(self.get)}
        )
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, f"http://127.0.0.1:{port}"


@pytest.fixture
async def servers() -> AsyncIterator[list[Any]]:
    started: list[Any] = []
    yield started
    for s in started:
        await s.stop(None)


async def ask(
    servers: list[Any], primary: str, replica: str, failover: bool
) -> tuple[str, str | None, bytes | None]:
    """(status name, x-served-by, answer) of one call on a fresh gateway."""
    server, gw, port = await start_gateway(GrpcGatewayConfig(primary, replica, failover))
    servers.append(server)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary(GET)(b"7", metadata=(("x-chaos-run", "r1"), ("x-other", "no")))
            try:
                answer = await call
                code = "OK"
            except grpc.aio.AioRpcError as e:
                answer, code = None, e.code().name
            served = dict(await call.trailing_metadata() or ()).get("x-served-by")
            return code, served, answer
    finally:
        await gw.close()


async def backends(servers: list[Any], *bs: Backend) -> list[str]:
    urls = []
    for b in bs:
        server, url = await b.start()
        servers.append(server)
        urls.append(url)
    return urls


async def test_a_healthy_primary_answers_with_the_propagated_metadata(servers: list[Any]) -> None:
    primary, replica = Backend("primary"), Backend("replica")
    p, r = await backends(servers, primary, replica)
    assert await ask(servers, p, r, True) == ("OK", "primary", b"primary:7")
    assert primary.metadata[0]["x-chaos-run"] == "r1" and "x-other" not in primary.metadata[0]
    assert replica.metadata == []


@pytest.mark.parametrize("failover", [True, False])
async def test_unavailable_fails_over_only_with_failover(
    servers: list[Any], failover: bool
) -> None:
    p, r = await backends(
        servers, Backend("primary", grpc.StatusCode.UNAVAILABLE), Backend("replica")
    )
    got = await ask(servers, p, r, failover)
    if failover:
        assert got == ("OK", "replica", b"replica:7")
    else:
        assert got[:2] == ("UNAVAILABLE", "primary")


async def test_an_answer_is_passed_on_and_a_vanished_primary_fails_over(
    servers: list[Any],
) -> None:
    p, r = await backends(
        servers, Backend("primary", grpc.StatusCode.NOT_FOUND), Backend("replica")
    )
    assert (await ask(servers, p, r, True))[:2] == ("NOT_FOUND", "primary")
    gone, port = await start_service()
    await gone.stop(None)  # nothing listens there any more
    assert await ask(servers, f"127.0.0.1:{port}", r, True) == ("OK", "replica", b"replica:7")
