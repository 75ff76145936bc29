"""One direction of a relayed connection: the bytes one side reads, written to the other.

With no fault on the direction (`flow` None) the bytes take the fast path: each chunk read is
written straight to the other transport, and flow control is the transports' own (the writer's
buffer past its high-water mark pauses the reader; `Side.hold`). With faults, a pump task takes
the chunks from a queue and shapes them (`Flow`: stall, latency, slices, rate, byte limit, the
delayed end of stream). The queue is bounded: past `HIGH` bytes the reader is paused. A chunk
queued once keeps its place: when the faults end, the pump drains what it holds, in order,
before the fast path takes over again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import TYPE_CHECKING

from chaosproxy.faults.tcp.plan import Flow

if TYPE_CHECKING:
    from chaosproxy.tcp.relay import Relay, Side

HIGH = 256 * 1024  # bytes a pump may hold before the reading side is paused
LOW = 64 * 1024  # ...and resumed
PACE = 0.02  # seconds of `rate` a bandwidth-paced piece carries (smooth, not byte by byte)

# Reasons a side's reading is paused (a bit each: reading resumes when none is left).
BACKPRESSURE = 1  # the other side's write buffer is full
QUEUED = 2  # the pump holds HIGH bytes already
CONNECTING = 4  # the upstream connection is not made yet


class Pipe:
    """Bytes from `src` to `dst` (either may be None: a side not connected)."""

    __slots__ = (
        "blocked",
        "bytes",
        "direction",
        "dst",
        "ended",
        "eof",
        "flow",
        "free_at",
        "last_release",
        "queue",
        "queued",
        "relay",
        "rng",
        "sent",
        "src",
        "task",
        "waiter",
    )

    def __init__(self, relay: Relay, direction: str, src: Side | None, dst: Side | None) -> None:
        self.relay = relay
        self.direction = direction
        self.src = src
        self.dst = dst
        self.flow: Flow | None = None
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.eof = False  # the end of stream was read (queued behind the bytes, if any)
        self.ended = False  # ...and passed on
        self.blocked = False  # dst's write buffer is past its high-water mark
        self.task: asyncio.Task[None] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.bytes = 0  # read from src since the connection opened
        self.sent = 0  # written under the current flow (what `limit` counts)
        self.last_release = 0.0  # latency: a chunk never leaves before the one ahead of it
        self.free_at = 0.0  # bandwidth: when the paced link is free again
        self.rng: random.Random = relay.rng

    # ------------------------------------------------------------ fed by src

    def feed(self, data: bytes) -> None:
        self.bytes += len(data)
        dst = self.dst
        if self.task is None and self.flow is None:
            if dst is not None and dst.transport is not None and not self.queue:
                dst.transport.write(data)
                return
            if dst is None and self.relay.connector is None:
                return  # no upstream (half_open): the bytes are dropped
            # Read before the upstream connection was made (uvloop may read once before a
            # pause in connection_made takes effect): kept for `connected()`.
        self.queue.append((time.monotonic(), data))
        self.queued += len(data)
        if self.queued > HIGH and self.src is not None:
            self.src.hold(QUEUED)
        self._wake()

    def feed_eof(self) -> None:
        self.eof = True
        if self.task is None and self.flow is None:
            if self.dst is None and self.relay.connector is not None:
                return  # passed on by `connected()`
            if not self.queue:
                self._end()
                return
        self._wake()

    def connected(self) -> None:
        """`dst` was just connected: what was read meanwhile goes first."""
        if self.task is not None:
            self._wake()
            return
        dst = self.dst
        if self.flow is None and dst is not None and dst.transport is not None:
            while self.queue:
                dst.transport.write(self.queue.popleft()[1])
            self.queued = 0
            if self.src is not None:
                self.src.release(QUEUED)
            if self.eof:
                self._end()

    # ------------------------------------------------------------ flow control of dst

    def dst_paused(self) -> None:
        self.blocked = True
        if self.src is not None:
            self.src.hold(BACKPRESSURE)

    def dst_resumed(self) -> None:
        self.blocked = False
        if self.src is not None:
            self.src.release(BACKPRESSURE)
        self._wake()

    # ------------------------------------------------------------ faults

    def set_flow(self, flow: Flow | None) -> None:
        """The faults in force changed: a new flow (None: none), counted afresh."""
        self.flow = flow
        self.sent = 0
        if flow is not None and self.task is None:
            self.task = self.relay.loop.create_task(self._pump())
        self._wake()

    def close(self) -> None:
        task, self.task = self.task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self.queue.clear()

    # ------------------------------------------------------------ the pump

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _wait(self) -> None:
        self.waiter = self.relay.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def _pump(self) -> None:
        try:
            await self._run()
        finally:
            if self.task is asyncio.current_task():
                self.task = None

    async def _run(self) -> None:
        loop = self.relay.loop
        while True:
            flow = self.flow
            if (flow is not None and flow.stall) or (
                self.dst is None and self.relay.connector is not None
            ):
                await self._wait()
                continue
            if not self.queue:
                if self.eof:
                    if flow is not None and flow.close_delay:
                        await asyncio.sleep(flow.close_delay)
                    self._end()
                    return
                if flow is None:
                    return  # nothing held: the fast path again
                await self._wait()
                continue
            arrival, data = self.queue.popleft()
            self.queued -= len(data)
            if self.queued <= LOW and self.src is not None:
                self.src.release(QUEUED)
            if flow is None:
                await self._write(data)
                continue
            if flow.latency:
                delay = sum(sample(self.rng) for sample in flow.latency)
                at = max(self.last_release, arrival + delay)
                self.last_release = at
                await self.relay.proxy.deadlines.sleep_until(at)  # never early, on time
            for piece in self._pieces(flow, data):
                if flow.rate is not None:
                    now = loop.time()
                    at = max(self.free_at, now)
                    if at > now:
                        await asyncio.sleep(at - now)
                    self.free_at = at + len(piece) / flow.rate
                if flow.limit is not None and self.sent + len(piece) >= flow.limit:
                    await self._write(piece[: flow.limit - self.sent])
                    self.relay.close()  # the limit is reached: FIN both ways, after the bytes
                    return
                await self._write(piece)
                if flow.slices is not None and flow.slices[2] > 0:
                    await asyncio.sleep(flow.slices[2])

    def _pieces(self, flow: Flow, data: bytes) -> list[bytes]:
        """`data` cut as the flow asks: slices of average ± variation bytes, or pieces of
        PACE seconds of the rate (so a paced link carries bytes evenly)."""
        if flow.slices is not None:
            avg, var, _ = flow.slices
            lo, hi = avg - var, avg + var
        elif flow.rate is not None:
            lo = hi = max(1, int(flow.rate * PACE))
        else:
            return [data]
        if len(data) <= lo:
            return [data]
        out, at = [], 0
        while at < len(data):
            n = self.rng.randint(lo, hi) if hi > lo else lo
            out.append(data[at : at + n])
            at += n
        return out

    async def _write(self, data: bytes) -> None:
        while self.blocked:
            await self._wait()
        dst = self.dst
        if data and dst is not None and dst.transport is not None:
            dst.transport.write(data)
            self.sent += len(data)

    def _end(self) -> None:
        """Pass the end of stream on (FIN), once everything before it was written."""
        if self.ended:
            return
        self.ended = True
        dst = self.dst
        if dst is not None and dst.transport is not None and dst.transport.can_write_eof():
            dst.transport.write_eof()
        self.relay.ended()
