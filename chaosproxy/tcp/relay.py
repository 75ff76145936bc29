"""One relayed TCP connection: the client's socket, the upstream's, and a `Pipe` each way.

asyncio protocols and transports (not streams): a chunk read is written to the other side in
the same callback, with no task or buffer copy in between while no fault is in force. The end
of stream is passed on as a half-close (`write_eof`), so a protocol that shuts down its sending
side and keeps reading works through the proxy; the connection closes once both directions
ended. A side lost with an error (a reset) resets the other side too, so a peer's RST reaches
the other peer as an RST.

The plan of the faults in force is applied when the connection is accepted and again whenever
what is in force changes (`apply`): latency, pacing and stalls change the pipes, `reset` and the
close of `timeout` are timers from that moment (kept by the registry's `Deadlines`: never
early, where the loop's own timers end up to 1.5 ms early on uvloop), `refused` resets a live
connection at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from chaosproxy.common.wake import Timer
from chaosproxy.faults.tcp.plan import DOWNSTREAM, UPSTREAM, Plan
from chaosproxy.tcp.pipe import CONNECTING, Pipe

if TYPE_CHECKING:
    from chaosproxy.tcp.listener import TcpProxy

_LINGER_RST = struct.pack("ii", 1, 0)


class Side(asyncio.Protocol):
    """One socket of the connection; `into` is the pipe its reads feed, `out` the pipe that
    writes to it."""

    __slots__ = ("into", "out", "paused", "relay", "transport")

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.into: Pipe | None = None
        self.out: Pipe | None = None
        self.paused = 0  # reasons reading is paused (pipe.BACKPRESSURE, QUEUED, CONNECTING)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        if self.paused:
            self.transport.pause_reading()
        relay = self.relay
        if self is relay.client:
            relay.proxy.opened(relay)

    def data_received(self, data: bytes) -> None:
        pipe = self.into
        if pipe is not None:
            pipe.feed(data)

    def eof_received(self) -> bool:
        pipe = self.into
        if pipe is not None:
            pipe.feed_eof()
        return True  # keep the socket open to write: a half-close, passed on

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.lost(self, exc)

    def pause_writing(self) -> None:
        if self.out is not None:
            self.out.dst_paused()

    def resume_writing(self) -> None:
        if self.out is not None:
            self.out.dst_resumed()

    def hold(self, reason: int) -> None:
        """Pause reading for `reason` (reading resumes once every reason is released)."""
        was = self.paused
        self.paused = was | reason
        t = self.transport
        if not was and t is not None and not t.is_closing():
            t.pause_reading()

    def release(self, reason: int) -> None:
        was = self.paused
        if not was & reason:
            return
        self.paused = was & ~reason
        t = self.transport
        if not self.paused and t is not None and not t.is_closing():
            t.resume_reading()

    def reset(self) -> None:
        """Abort with an RST (SO_LINGER 0), discarding what is unsent."""
        t = self.transport
        if t is None or t.is_closing():
            return
        sock = t.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        t.abort()


class Relay:
    """A client connection and its upstream, relayed; made by the listener per accept."""

    __slots__ = (
        "__weakref__",
        "client",
        "closed",
        "connector",
        "down",
        "faults",
        "id",
        "loop",
        "proxy",
        "rng",
        "timers",
        "up",
        "upstream",
    )

    def __init__(self, proxy: TcpProxy, number: int) -> None:
        self.proxy = proxy
        self.id = f"{proxy.name}#{number}"
        self.loop = asyncio.get_running_loop()
        self.rng: random.Random = proxy.rng
        self.client = Side(self)
        self.upstream: Side | None = None
        self.up = Pipe(self, UPSTREAM, self.client, None)
        self.down = Pipe(self, DOWNSTREAM, None, self.client)
        self.client.into, self.client.out = self.up, self.down
        self.closed = False
        self.connector: asyncio.Task[None] | None = None
        self.timers: list[Timer] = []
        self.faults: tuple[object, ...] = ()  # the fault objects the current plan came from

    @property
    def peer(self) -> str:
        t = self.client.transport
        addr = t.get_extra_info("peername") if t is not None else None
        return str(addr[0]) if isinstance(addr, tuple) and addr else ""

    # ------------------------------------------------------------ lifecycle

    def connect(self, host: str, port: int, timeout: float, failed: Callable[[], None]) -> None:
        """Open the upstream connection; the client is not read until it is made."""
        self.client.hold(CONNECTING)
        self.connector = self.loop.create_task(self._connect(host, port, timeout, failed))

    async def _connect(
        self, host: str, port: int, timeout: float, failed: Callable[[], None]
    ) -> None:
        side = Side(self)
        side.into, side.out = self.down, self.up
        try:
            await asyncio.wait_for(self.loop.create_connection(lambda: side, host, port), timeout)
        except (OSError, TimeoutError):
            failed()
            self.reset()  # the client learns at once, as if the service had reset it
            return
        finally:
            self.connector = None
        if self.closed:
            if side.transport is not None:
                side.transport.close()
            return
        self.upstream = side
        self.up.dst = side
        self.down.src = side
        self.up.connected()
        self.client.release(CONNECTING)

    def apply(self, plan: Plan, faults: tuple[object, ...]) -> None:
        """Carry out `plan` from now (the faults in force changed, or the connection opened)."""
        self.faults = faults
        self._cancel_timers()
        if plan.refuse:
            self.reset()
            return
        if self.upstream is None and self.connector is None:  # half_open: nothing upstream
            self.up.set_flow(None)  # the client's bytes are read and dropped
        else:
            self.up.set_flow(None if plan.up.idle else plan.up)
            self.down.set_flow(None if plan.down.idle else plan.down)
        now = time.monotonic()
        if plan.reset_after is not None:
            self.timers.append(self.proxy.deadlines.call_at(now + plan.reset_after, self.reset))
        if plan.close_after is not None:
            self.timers.append(self.proxy.deadlines.call_at(now + plan.close_after, self.close))

    def _cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers = []

    def ended(self) -> None:
        """One direction passed its end of stream on: once both did, close both sockets."""
        if self.up.ended and self.down.ended:
            self.close()
        elif self.upstream is None and self.up.ended and self.connector is None:
            self.close()  # half_open: the client ended and nothing is upstream

    def lost(self, side: Side, exc: Exception | None) -> None:
        if self.closed:
            return
        if exc is not None:
            self.reset()  # a reset on one side is a reset on the other
        else:
            self.close()

    def close(self) -> None:
        """Close both sockets with a FIN, after what is buffered to write."""
        self._shut(abort=False)

    def reset(self) -> None:
        """Reset both sockets (RST)."""
        self._shut(abort=True)

    def _shut(self, abort: bool) -> None:
        if self.closed:
            if abort:  # a close already began: make it a reset
                self.client.reset()
                if self.upstream is not None:
                    self.upstream.reset()
            return
        self.closed = True
        self._cancel_timers()
        if self.connector is not None:
            self.connector.cancel()
            self.connector = None
        self.up.close()
        self.down.close()
        for side in (self.client, self.upstream):
            if side is None or side.transport is None:
                continue
            if abort:
                side.reset()
            else:
                side.transport.close()
        self.proxy.forget(self)
