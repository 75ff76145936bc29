"""`grpc_abort`'s `pushback` (`grpc-retry-pushback-ms`) as grpcio's retry policy honours it: the
next attempt waits the pushback, not the policy's own (tiny) backoff."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import grpc
import grpc.aio

from chaosproxy.engine.matching import RequestView
from chaosproxy.faults import build
from tests.conftest import StartProxy
from tests.proxy.h2.conftest import SERVICE, EchoService

# Retry UNAVAILABLE up to 3 attempts with a 10 ms backoff: only a pushback makes it wait longer.
RETRY_POLICY = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": SERVICE}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.01s",
                    "maxBackoff": "0.01s",
                    "backoffMultiplier": 1,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def first_calls(n: int) -> Callable[[RequestView], bool]:
    left = [n]

    def match(v: RequestView) -> bool:
        left[0] -= 1
        return left[0] >= 0

    return match


async def test_grpcio_waits_the_pushback_before_retrying(
    grpc_server: tuple[EchoService, str], start_proxy: StartProxy
) -> None:
    service, url = grpc_server
    rt = await start_proxy(url)
    rt.engine.add_rule(
        [build("grpc_abort", {"code": "UNAVAILABLE", "pushback": "600ms"}, "f")],
        match=first_calls(1),
    )
    options = [("grpc.enable_http_proxy", 0), ("grpc.service_config", RETRY_POLICY)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rt.proxy_port}", options=options) as ch:
        t0 = time.monotonic()
        assert await ch.unary_unary(f"/{SERVICE}/Unary")(b"x") == b"echo:x"
        waited = time.monotonic() - t0
    assert service.calls == 1  # the first attempt was the fault's, the second reached it
    assert waited >= 0.6
