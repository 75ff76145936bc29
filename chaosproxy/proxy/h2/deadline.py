"""A gRPC call's deadline at the proxy, as Envoy keeps it: `grpc-timeout` is the call's timeout.

A client sends its deadline as `grpc-timeout` (the gRPC over HTTP/2 spec: at most 8 digits and
a unit, `H` `M` `S` `m` `u` `n`). When faults hold a gRPC call (a `latency`, a `hang`, a slow
body), the proxy does not sit on the stream past that deadline: it answers it with a
trailers-only `grpc-status: 4` (DEADLINE_EXCEEDED), or resets the stream with CANCEL when the
answer's head already left, and cancels the upstream stream (RST_STREAM(CANCEL)) if the call
was forwarded — what a gRPC server does at a deadline, and what Envoy does with the route
timeout it takes from `grpc-timeout`. A call that went upstream late carries the time left, not
the time the client gave (`upstream_timeout`). A malformed value is ignored, as gRPC ignores it;
a deadline past `LONGEST` counts as none. Calls no fault acts on are left to their client.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Coroutine
from typing import Any

from chaosproxy.proxy.h2.exchange import H2Exchange
from chaosproxy.proxy.h2.headers import LONGEST as LONGEST  # a deadline past it counts as none
from chaosproxy.proxy.h2.headers import parse_grpc_timeout
from chaosproxy.proxy.h2.stream import CANCEL

log = logging.getLogger("chaosproxy.proxy")

DEADLINE_MESSAGE = "Deadline Exceeded"


def format_grpc_timeout(seconds: float) -> str:
    """`seconds` as a `grpc-timeout` value (rounded up, in the finest unit that fits 8 digits)."""
    for unit, scale in (("n", 1e-9), ("u", 1e-6), ("m", 1e-3), ("S", 1.0), ("M", 60.0)):
        n = math.ceil(max(seconds, 0.0) / scale - 1e-6)
        if n <= 99_999_999:
            return f"{max(n, 1)}{unit}"
    return f"{min(math.ceil(seconds / 3600.0), 99_999_999)}H"


def upstream_timeout(ex: H2Exchange, now: float) -> bytes:
    """The `grpc-timeout` to send upstream for a call whose deadline the proxy keeps."""
    assert ex.deadline is not None
    return format_grpc_timeout(ex.deadline - now).encode()


async def within_deadline(ex: H2Exchange, work: Coroutine[Any, Any, None]) -> None:
    """Run `work` (the fault chain of a call) up to the call's deadline, then answer it
    DEADLINE_EXCEEDED. Not a gRPC call, or no (valid) `grpc-timeout`: `work` as it is."""
    timeout = parse_grpc_timeout(ex.header("grpc-timeout")) if ex.grpc else None
    if timeout is None:
        await work
        return
    ex.deadline = ex.t0 + timeout
    try:
        async with asyncio.timeout(ex.deadline - ex.clock.monotonic()) as cm:
            await work
    except TimeoutError:
        if not cm.expired():
            raise
        await deadline_exceeded(ex, timeout)


async def deadline_exceeded(ex: H2Exchange, timeout: float) -> None:
    """The deadline passed with the call unanswered (or its answer unfinished)."""
    log.debug(
        "gRPC deadline of %gs passed at the proxy [%s]",
        timeout,
        ex.request_id,
        extra={"request_id": ex.request_id},
    )
    if ex.finished or ex.client_gone:
        return
    if ex.head_sent:
        ex.reset_stream(CANCEL)  # mid-answer: a message may be cut, so no trailers (as Envoy)
        return
    ex.abort_upstream()
    await ex.respond(
        200,
        b"",
        [
            ("content-type", "application/grpc"),
            ("grpc-status", "4"),
            ("grpc-message", DEADLINE_MESSAGE),
        ],
    )
