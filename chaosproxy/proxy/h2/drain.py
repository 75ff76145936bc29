"""The graceful close of a client's HTTP/2 connection: the drain Envoy and nghttpx do, for a
stop of the proxy and for the `goaway` fault, and a client's own GOAWAY.

A drain is GOAWAY(2^31-1) (open nothing new here; streams already on their way still count),
a pause, then GOAWAY(the last stream id received): the streams up to it finish, a newer one is
refused with REFUSED_STREAM (never processed: a client retries it elsewhere), and the
connection closes once its last stream ended. The GOAWAY frames are written raw
(`H2Wire.send_goaway`): h2's own `close_connection` would take its state machine to CLOSED,
after which the streams in flight could send nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib

from chaosproxy.proxy.h2.connection import MAX_STREAM_ID, H2Wire
from chaosproxy.proxy.h2.stream import NO_ERROR

_DRAIN_PING = b"drain\x00\x00\x00"  # our PING's opaque data, 8 bytes
_ROUND_TRIP = 1.0  # a stop's wait for the PING's ACK between the two GOAWAYs, at most


class DrainingWire(H2Wire):
    """The server side's drains; `tasks` are the streams being answered (the subclass's)."""

    def __init__(self) -> None:
        super().__init__(client_side=False)
        self.tasks: dict[asyncio.Task[None], int] = {}  # the stream each task answers
        # The last stream id of our final GOAWAY: newer streams are refused
        self.last_stream: int | None = None
        self._draining = False
        self._pong: asyncio.Future[None] | None = None  # the ACK of our PING, while awaited
        self._stop: asyncio.Task[None] | None = None  # a stop's drain
        self._ended = asyncio.Event()  # the connection is gone

    def stopping(self, task: asyncio.Task[None]) -> None:
        """A stop's drain runs as `task` (the listener waits for it)."""

    def _disarm_idle(self) -> None:
        """No idle timeout while draining (the subclass's timer)."""

    # ------------------------------------------------------------ the `goaway` fault

    def drain_streams(self, interval: float, code: int = NO_ERROR) -> None:
        """GOAWAY(2^31-1), `interval` later GOAWAY(last stream id received, `code`)."""
        if self._draining or self.closed:
            return
        self._draining = True
        self.send_goaway(MAX_STREAM_ID, NO_ERROR)
        asyncio.get_running_loop().call_later(interval, self._final_goaway, code)

    def _final_goaway(self, code: int) -> None:
        if self.closed or self.last_stream is not None:
            return  # a last stream id never grows (RFC 9113 §6.8)
        self.last_stream = self.h2.highest_inbound_stream_id
        self.send_goaway(self.last_stream, code)
        if not self.tasks:
            self.close()

    def goaway_now(self, last_stream: int, code: int) -> None:
        """GOAWAY(`last_stream`, `code`), then close: streams after `last_stream` were never
        processed (a client may retry them), those before it still running are cut."""
        self.last_stream = last_stream
        self.send_goaway(last_stream, code)
        self.close()

    # ------------------------------------------------------------ a stop of the proxy

    def stop(self) -> None:
        """The proxy stops (the listener's close): a drain whose pause is a PING round trip (at
        most a second), so that the streams the client opened before it read the first GOAWAY
        have arrived. The listener waits for the drain up to --grace, then cancels it: the
        streams still running are cut with the connection."""
        if self._stop is not None or self.closed:
            return
        loop = asyncio.get_running_loop()
        pong = None
        if not self._draining:  # else the `goaway` fault's drain is under way
            self._draining = True
            self._disarm_idle()
            # Now, not in the task: with --grace 0 the task is cancelled before it runs.
            self.send_goaway(MAX_STREAM_ID, NO_ERROR)
            pong = self._pong = loop.create_future()
            self.h2.ping(_DRAIN_PING)
            self.flush_now()
        task = self._stop = loop.create_task(self._stopping(pong))
        self.stopping(task)

    async def _stopping(self, pong: asyncio.Future[None] | None) -> None:
        try:
            if pong is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_ROUND_TRIP):
                        await pong
                self._pong = None
                self._final_goaway(NO_ERROR)
            await self._ended.wait()
        finally:
            self.close()

    def ping_acked(self, data: bytes | None) -> None:
        pong = self._pong
        if pong is not None and not pong.done() and data == _DRAIN_PING:
            pong.set_result(None)

    # ------------------------------------------------------------ the client's side

    def on_goaway(self) -> None:
        """The client opens no new streams here: those in flight are answered, then the
        connection closes."""
        if not self.tasks:
            self.close()

    def ended(self) -> None:
        """The connection is gone: a drain waiting for it ends."""
        self._ended.set()
        pong = self._pong
        if pong is not None and not pong.done():
            pong.set_result(None)
