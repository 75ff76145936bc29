"""A scripted Exchange for fault unit tests: fake clock, seeded RNG, no sockets.

`run(fault, reply, chunks)` applies a fault the way the proxy does: the chain ends in an
upstream step that runs the reply hooks, the headers hooks and the body filters, and collects
what the client would have received.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from chaosproxy._clock import FakeClock
from chaosproxy.faults.base import (
    BodyFilter,
    Fault,
    Headers,
    HeadersHook,
    Reply,
    ReplyHook,
    RespondHook,
)
from chaosproxy.proxy.exchange import error_json


class FakeExchange:
    def __init__(
        self,
        clock: FakeClock | None = None,
        seed: int = 1,
        path: str = "/x",
        query_string: str = "",
        upstream: tuple[Reply, list[bytes]] | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.rng = random.Random(seed)
        self.request_id = "req-1"
        self.method = "GET"
        self.path = path
        self.query_string = query_string
        self.headers: Mapping[str, str] = {}
        self.client_ip = "127.0.0.1"
        self.upstream_url = "http://127.0.0.1:8080"
        self.upstream = upstream or (Reply(200, "OK", [("Content-Length", "3")]), [b"abc"])
        self.events: list[tuple[str, str]] = []
        self.finished = False
        self.client_gone = False
        self.response_status: int | None = None
        self.shared: dict[str, Any] = {}
        # What the client saw.
        self.sent_status: int | None = None
        self.sent_headers: Headers = []
        self.sent_body = b""
        self.raw = b""
        self.how_ended = ""  # respond | eof | reset | close
        self.upstream_calls = 0
        self.flushes = 0
        self._reply_hooks: list[ReplyHook] = []
        self._headers_hooks: list[HeadersHook] = []
        self._filters: list[BodyFilter] = []
        self._respond_hooks: list[RespondHook] = []
        self._finish: list[Callable[[], None]] = []

    def record(self, fault: Fault, outcome: str) -> None:
        self.events.append((fault.name, outcome))

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    def error_body(self, status: int, details: str, message: str | None = None) -> bytes:
        return error_json(status, self.request_id, details, message)

    async def respond(
        self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        headers = list(headers)
        for hook in self._respond_hooks:
            hook(status, body, headers)
        self.finished = True
        self.response_status = self.sent_status = status
        self.sent_headers, self.sent_body, self.how_ended = headers, body, "respond"

    async def write_raw(self, data: bytes) -> None:
        self.raw += data

    def reset(self) -> None:
        self.finished, self.how_ended = True, "reset"

    def close(self) -> None:
        self.finished, self.how_ended = True, "close"

    async def flush(self) -> None:
        self.flushes += 1

    def on_reply(self, hook: ReplyHook) -> None:
        self._reply_hooks.append(hook)

    def on_headers_sent(self, hook: HeadersHook) -> None:
        self._headers_hooks.append(hook)

    def filter_body(self, body_filter: BodyFilter) -> None:
        self._filters.append(body_filter)

    def on_respond(self, hook: RespondHook) -> None:
        self._respond_hooks.append(hook)

    def on_finish(self, callback: Callable[[], None]) -> None:
        self._finish.append(callback)

    async def fetch_upstream(self) -> tuple[Reply, AsyncIterator[bytes]]:
        self.upstream_calls += 1
        reply, chunks = self.upstream

        async def body() -> AsyncIterator[bytes]:
            for c in chunks:
                yield c

        return Reply(reply.status, reply.reason, list(reply.headers)), body()

    async def proceed_upstream(self) -> None:
        reply_or_none: Reply | None
        reply_or_none, body = await self.fetch_upstream()
        for hook in self._reply_hooks:
            reply_or_none = await hook(self, reply_or_none)  # type: ignore[arg-type]
            if reply_or_none is None or self.finished:
                return
        reply = reply_or_none
        self.response_status = self.sent_status = reply.status
        self.sent_headers = reply.headers
        for hh in self._headers_hooks:
            await hh(self)
            if self.finished:
                return
        stream = body
        for f in self._filters:
            stream = f(self, stream)
        async for chunk in stream:
            if self.finished:
                return
            self.sent_body += chunk
        if not self.finished:
            self.finished, self.how_ended = True, "eof"


async def run(fault: Fault, ex: FakeExchange) -> None:
    """Apply one fault with the upstream as the rest of the chain."""
    await fault.apply(ex, ex.proceed_upstream)
