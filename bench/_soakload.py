"""The soak's load generator: asyncio protocols with httptools, keep-alive connections, one
request at a time each, paced open-loop (or closed-loop for the capacity probe). Every request
carries `X-Request-Id: soak-N` and ends as exactly one outcome byte (`_soakjudge`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httptools
from _soakjudge import BADBODY, CLOSED, CONNECT, GARBAGE, OK, PENDING, RESET, STATUS, TIMEOUT

BODY = b"hello, world\n"  # what the upstream answers on /small (passthrough.py's upstream)


class Conn(asyncio.Protocol):
    """One keep-alive client connection, one request at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, int, bytes]] | None = None
        self.body = bytearray()
        self.alive = True
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def request(self, wire: bytes) -> asyncio.Future[tuple[int, int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.body.clear()
        self.sent_at = time.monotonic()
        self.transport.write(wire)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.fail(GARBAGE)

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_result((STATUS, self.parser.get_status_code(), bytes(self.body)))
        if not self.parser.should_keep_alive():
            self.fail(CLOSED)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RESET if isinstance(exc, ConnectionResetError) else CLOSED)

    def fail(self, outcome: int) -> None:
        self.alive = False
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_result((outcome, 0, b""))
        if self.transport is not None:
            self.transport.abort()


@dataclass
class Load:
    host: str
    port: int
    conns: int
    timeout: float = 10.0
    outcomes: bytearray = field(default_factory=bytearray)
    statuses: dict[int, int] = field(default_factory=dict)  # request number -> non-2xx status
    connections: int = 0  # opened, over the run
    missed: int = 0  # requests the pacer could not hand to a free connection in time
    queue: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    live: set[Conn] = field(default_factory=set)

    def wire(self, n: int) -> bytes:
        return (
            f"GET /small HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"X-Request-Id: soak-{n}\r\n\r\n"
        ).encode()

    def next_id(self) -> int:
        self.outcomes.append(PENDING)
        return len(self.outcomes) - 1

    def done(self) -> int:
        return len(self.outcomes) - self.outcomes.count(PENDING)

    async def one(self, conn: Conn | None, n: int) -> Conn | None:
        if conn is None or not conn.alive:
            try:
                _, conn = await asyncio.get_running_loop().create_connection(
                    Conn, self.host, self.port
                )
            except OSError:
                self.outcomes[n] = CONNECT
                return None
            self.connections += 1
        self.live.add(conn)
        outcome, status, body = await conn.request(self.wire(n))
        self.live.discard(conn)
        if outcome == STATUS:
            if 200 <= status < 300:
                outcome = OK if body == BODY else BADBODY
            else:
                self.statuses[n] = status
        self.outcomes[n] = outcome
        return conn if conn.alive else None

    async def paced_worker(self) -> None:
        conn: Conn | None = None
        while (n := await self.queue.get()) >= 0:
            conn = await self.one(conn, n)
        if conn is not None:
            conn.fail(CLOSED)

    async def closed_worker(self, until: float) -> None:
        conn: Conn | None = None
        while time.monotonic() < until:
            conn = await self.one(conn, self.next_id())
        if conn is not None:
            conn.fail(CLOSED)

    async def pace(self, rate: float, until: float) -> None:
        """Hand out request numbers at `rate`; a backlog beyond 4 per connection is dropped
        (counted as missed) rather than sent in a burst later."""
        t0, issued = time.monotonic(), 0
        while (now := time.monotonic()) < until:
            due = int((now - t0) * rate)
            if self.queue.qsize() >= 4 * self.conns:
                self.missed += due - issued
                issued = due
            for _ in range(due - issued):
                self.queue.put_nowait(self.next_id())
            issued = due
            await asyncio.sleep(0.005)

    async def sweep(self) -> None:
        """A request unanswered for `timeout` ends as a timeout (its connection is dropped)."""
        while True:
            await asyncio.sleep(1.0)
            old = time.monotonic() - self.timeout
            for conn in [c for c in self.live if c.sent_at < old]:
                conn.fail(TIMEOUT)
