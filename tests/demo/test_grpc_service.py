"""The gRPC demo service, called by a real grpcio client: items as JSON, and the statuses a
client must not retry elsewhere for a bad or unknown id."""

from __future__ import annotations

import json

import grpc
import grpc.aio
import pytest

from chaosproxy.demo.grpc_service import GET, LIST, start_service


async def test_get_list_and_the_statuses_of_bad_ids() -> None:
    server, port = await start_service()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            item = json.loads(await ch.unary_unary(GET)(b"7"))
            assert item == {"id": 7, "name": "item-7", "price": 16.99}
            listing = json.loads(await ch.unary_unary(LIST)(b""))
            assert listing["count"] == 20 and len(listing["items"]) == 20
            for request, code in (
                (b"99", grpc.StatusCode.NOT_FOUND),
                (b"x", grpc.StatusCode.INVALID_ARGUMENT),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await ch.unary_unary(GET)(request)
                assert err.value.code() == code
    finally:
        await server.stop(None)
