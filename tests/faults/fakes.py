"""A scripted Exchange for fault unit tests: fake clock, seeded RNG, no sockets.

`run(fault, ex)` applies a fault the way the proxy does: the chain ends in the proxy's own hook
pipeline (`chaosproxy.proxy.downstream.pipeline`: reply hooks, head, headers hooks, body
filters) writing to this fake's wire, which records what the client would have received.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

from chaosproxy.common.clock import FakeClock
from chaosproxy.common.errors import UpstreamError
from chaosproxy.faults.base import Fault, Headers, Reply
from chaosproxy.proxy.downstream import pipeline
from chaosproxy.proxy.downstream.pipeline import Hooks
from chaosproxy.proxy.downstream.responses import body_allowed, error_json


class FakeBody:
    """A scripted upstream body: its pieces one by one (an exception: the upstream breaks off
    there). Never `complete`, so every piece is written on its own, as the tests script them."""

    complete = False

    def __init__(self, chunks: Sequence[bytes | Exception]) -> None:
        self._chunks = iter(chunks)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        c = next(self._chunks, None)
        if c is None:
            raise StopAsyncIteration
        if isinstance(c, Exception):
            raise c
        return c


class FakeAnswer:
    """A scripted upstream answer: a reply and its body's pieces."""

    def __init__(self, reply: Reply, chunks: Sequence[bytes | Exception]) -> None:
        self.status, self.reason, self.headers = reply.status, reply.reason, list(reply.headers)
        self._chunks = chunks
        self.released = False

    def body(self) -> FakeBody:
        return FakeBody(self._chunks)

    def release(self) -> None:
        self.released = True


class FakeExchange(Hooks):
    def __init__(
        self,
        clock: FakeClock | None = None,
        seed: int = 1,
        path: str = "/x",
        query_string: str = "",
        upstream: tuple[Reply, Sequence[bytes | Exception]] | None = None,
    ) -> None:
        super().__init__()
        self.clock = clock or FakeClock()
        self.rng = random.Random(seed)
        self.request_id = "req-1"
        self.method = "GET"
        self.path = path
        self.query_string = query_string
        self.headers: Mapping[str, str] = {}
        self.client_ip = "127.0.0.1"
        self.upstream_url = "http://127.0.0.1:8080"
        self.upstream: tuple[Reply, Sequence[bytes | Exception]] = upstream or (
            Reply(200, "OK", [("Content-Length", "3")]),
            [b"abc"],
        )
        self.events: list[tuple[str, str]] = []
        self.acted = asyncio.Event()  # set when a fault records that it acted
        self.finished = False
        self.client_gone = False
        self.response_status: int | None = None
        # What the client saw.
        self.sent_status: int | None = None
        self.sent_headers: Headers = []
        self.sent_body = b""
        self.raw = b""
        self.how_ended = ""  # respond | eof | reset | close
        self.upstream_error: UpstreamError | None = None
        self.upstream_calls = 0
        self.answer: FakeAnswer | None = None  # the last one fetched
        self.flushes = 0

    def record(self, fault: Fault, outcome: str) -> None:
        self.events.append((fault.name, outcome))
        self.acted.set()

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    def error_body(self, status: int, details: str, message: str | None = None) -> bytes:
        return error_json(status, self.request_id, details, message)

    async def respond(
        self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        headers = self.responding(status, body, headers)
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

    async def proceed_upstream(self) -> None:
        await pipeline.proceed(self, self, self)

    # The wire: the scripted upstream, and what the client receives.

    async def fetch(self) -> FakeAnswer:
        self.upstream_calls += 1
        self.answer = FakeAnswer(*self.upstream)
        return self.answer

    def send_head(self, reply: Reply, first: bytes) -> bool:
        self.response_status = self.sent_status = reply.status
        self.sent_headers = list(reply.headers)
        self.sent_body += first
        return body_allowed(self.method, reply.status)

    def send_answer(self, answer: FakeAnswer, first: bytes) -> bool:
        return self.send_head(Reply(answer.status, answer.reason, answer.headers), first)

    async def write(self, chunk: bytes) -> None:
        self.sent_body += chunk

    def end(self) -> None:
        self.finished, self.how_ended = True, "eof"

    def broke_off(self, error: UpstreamError) -> None:
        self.upstream_error = error
        self.close()


async def run(fault: Fault, ex: FakeExchange) -> None:
    """Apply one fault with the upstream as the rest of the chain."""
    await fault.apply(ex, ex.proceed_upstream)


async def drive(clock: FakeClock, task: asyncio.Task[None], step: float) -> None:
    """Advance `clock` by `step` each time `task` sleeps on it, until the task ends."""
    while not task.done():
        sleeping = asyncio.ensure_future(clock.wait_sleepers(1))
        await asyncio.wait({task, sleeping}, return_when=asyncio.FIRST_COMPLETED)
        sleeping.cancel()
        if not task.done():
            clock.advance(step)
    await task
