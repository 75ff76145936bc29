"""One upstream connection of the native client: the asyncio protocol, read and write flow
control, and the response in flight (if any), which it feeds."""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

from chaosproxy.proxy.wire.flow import WriteFlow


class Owner(Protocol):
    """Where a connection goes back to (the `pool.Pool`)."""

    def release(self, conn: Conn, reusable: bool) -> None: ...

    def lost(self, conn: Conn) -> None: ...


class Reader(Protocol):
    """The exchange a connection carries (the `response.Response`): it reads what arrives."""

    deadline: float  # loop time by which its head is due, when the pool sweeps it (else 0)

    def feed(self, data: bytes) -> None: ...

    def on_timeout(self) -> None: ...

    def connection_lost(self, exc: Exception | None, reused: bool) -> None: ...

    def drop(self) -> None:
        """Parked here, and not to be used again."""


class Conn(WriteFlow, asyncio.Protocol):
    """One upstream connection; feeds the response in flight (if any) and carries flow control."""

    lost_message = "the upstream connection closed"

    def __init__(self, pool: Owner) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.resp: Reader | None = None
        self.closed = False
        self.reused = False  # served a response before: the upstream may have closed it since
        self.idle_since = 0.0
        self.reading_paused = False
        # The reader of the last exchange, parked for the next one when it ended reusable:
        # its parser and fields are made once per connection, not once per request.
        self.spare: Reader | None = None

    def park(self, reader: Reader) -> None:
        if self.spare is None and self.usable:
            self.spare = reader
        else:
            reader.drop()

    def take_spare(self) -> Reader | None:
        spare = self.spare
        self.spare = None
        return spare

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        resp = self.resp
        if resp is None:  # bytes nobody asked for: the connection is no longer trustworthy
            self.close()
            return
        resp.feed(data)

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.lost(self)
        self.wake_drain()
        spare = self.take_spare()
        if spare is not None:
            spare.drop()
        resp = self.resp
        if resp is not None:
            resp.connection_lost(exc, self.reused)

    @property
    def usable(self) -> bool:
        """Open and not being closed (`closed` turns true only once the loop reports it)."""
        t = self.transport
        return t is not None and not self.closed and not t.is_closing()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()
