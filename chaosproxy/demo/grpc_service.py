"""The demo's gRPC service (`demo.Items`), the gRPC twin of `service.py`: primary and replica.

Generic handlers, no generated code: a request is the message's bytes, an answer too. `Get`
takes an item id as text (`b"7"`) and answers the item as JSON; `List` answers all 20 items.
A bad id is INVALID_ARGUMENT, an unknown one NOT_FOUND — answers a client must not retry
elsewhere, so the gateway passes them on instead of failing over.

Imported only where gRPC is wanted (the CLI imports it lazily): grpcio is the `grpc` extra.
"""

from __future__ import annotations

import json
from typing import Any

from chaosproxy.demo.grpc_support import grpc, grpc_aio
from chaosproxy.demo.service import ITEMS

SERVICE = "demo.Items"
GET = f"/{SERVICE}/Get"
LIST = f"/{SERVICE}/List"
OPTIONS = [("grpc.enable_http_proxy", 0), ("grpc.so_reuseport", 0)]


async def get_item(request: bytes, context: Any) -> bytes:
    try:
        item_id = int(request.decode("ascii", "replace").strip())
    except ValueError:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the id must be a number")
    for item in ITEMS:
        if item["id"] == item_id:
            return json.dumps(item).encode()
    await context.abort(grpc.StatusCode.NOT_FOUND, f"no item {item_id}")
    raise AssertionError("abort raises")  # pragma: no cover


async def list_items(request: bytes, context: Any) -> bytes:
    return json.dumps({"items": ITEMS, "count": len(ITEMS)}).encode()


def handlers() -> Any:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Get": grpc.unary_unary_rpc_method_handler(get_item),
            "List": grpc.unary_unary_rpc_method_handler(list_items),
        },
    )


async def start_service(host: str = "127.0.0.1", port: int = 0) -> tuple[Any, int]:
    """A started `grpc.aio` server of the demo service; (server, bound port)."""
    server = grpc_aio.server(options=OPTIONS)
    server.add_generic_rpc_handlers((handlers(),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    return server, int(bound)
