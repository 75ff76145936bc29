"""The client-facing HTTP/2 connection: h2c with prior knowledge on the proxy's one port.

The HTTP/1.1 listener (`downstream/listener.py`) reads the first bytes of every connection;
when they open with the HTTP/2 connection preface (`PRI * HTTP/2.0`) it hands the transport to
`handoff` here, which puts an `H2ServerConnection` in its place. Each request stream runs as
one task through the handler (`core.H2Core`). The listener's `ClientConnection` object stays
registered as the connection (it counts against --max-connections and a shutdown closes it);
it is told when the connection ends.

An idle connection (no stream open) is sent GOAWAY and closed after the listener's idle timeout.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from h2.events import Event, RequestReceived

from chaosproxy.proxy.h2.connection import H2Wire
from chaosproxy.proxy.h2.stream import INTERNAL_ERROR, NO_ERROR, REFUSED_STREAM, Stream

if TYPE_CHECKING:
    from chaosproxy.proxy.downstream.listener import ClientConnection

log = logging.getLogger("chaosproxy.proxy")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class StreamHandler(Protocol):
    """What answers the streams (the `H2Core`)."""

    async def handle_stream(self, conn: H2ServerConnection, s: Stream) -> None: ...


class H2ServerConnection(H2Wire):
    """One HTTP/2 client connection."""

    def __init__(
        self,
        handler: StreamHandler,
        client_ip: str,
        idle_timeout: float,
        origin: ClientConnection | None = None,
    ) -> None:
        super().__init__(client_side=False)
        self.handler = handler
        self.client_ip = client_ip
        self.origin = origin
        self.tasks: dict[asyncio.Task[None], int] = {}  # the stream each task answers
        self.idle_timeout = idle_timeout
        self._idle: asyncio.TimerHandle | None = None
        self._quiet: asyncio.Event | None = None  # set when no stream is being answered

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_idle()

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, RequestReceived):
            sid = ev.stream_id or 0
            s = Stream(sid, self.ack)
            s.head.set_result(list(ev.headers or []))
            self.streams[sid] = s
            if ev.stream_ended is not None:
                s.feed_eof()
            if self._closing:  # the proxy is stopping: no new work, the client may retry
                self.reset(s, REFUSED_STREAM)
                self.close_gracefully()
                return
            self._disarm_idle()
            loop = asyncio.get_running_loop()
            task = loop.create_task(self._run(s))
            self.tasks[task] = sid
            task.add_done_callback(self._task_done)
            self._busy(loop)

    @property
    def _closing(self) -> bool:
        return self.origin is not None and self.origin.listener.closing

    def _busy(self, loop: asyncio.AbstractEventLoop) -> None:
        """While streams are answered the listener sees a busy connection with a task to wait
        for: a stop lets them finish (up to --grace) instead of closing at once."""
        o = self.origin
        if o is None or o.busy:
            return
        quiet = self._quiet = asyncio.Event()
        o.busy = True
        o.task = loop.create_task(_until(quiet))

    async def _run(self, s: Stream) -> None:
        try:
            await self.handler.handle_stream(self, s)
        except Exception:  # escaped the handler's own error funnel: never leave it hanging
            log.exception("internal error on an HTTP/2 stream from %s", self.client_ip)
        finally:
            if s.id in self.streams:
                if not self.h2_state_closed_local(s):
                    self.reset(s, INTERNAL_ERROR)  # no answer was finished: say so
                elif not s.ended:
                    # Answered before the request ended: the client may stop sending
                    # (RFC 9113 §8.1).
                    self.reset(s, NO_ERROR)
                else:
                    self.forget(s)

    def h2_state_closed_local(self, s: Stream) -> bool:
        """We sent END_STREAM (or RST_STREAM) on `s`."""
        try:
            stream = self.h2.streams.get(s.id)
        except Exception:
            return True
        return (
            stream is None
            or bool(stream.closed)
            or stream.state_machine.state.name in ("HALF_CLOSED_LOCAL", "CLOSED")
        )

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.pop(task, None)
        if self.tasks:
            return
        o, quiet = self.origin, self._quiet
        if o is not None and quiet is not None:
            o.busy = False
            o.task = None
            self._quiet = None
            quiet.set()
        if self._closing:
            self.close_gracefully()  # GOAWAY, then the listener closes the connection
            self.close()
        else:
            self._arm_idle()

    def _arm_idle(self) -> None:
        if self.idle_timeout and not self.closed:
            self._disarm_idle()
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self.idle_timeout, self._idle_out)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_out(self) -> None:
        self._idle = None
        if not self.tasks:
            self.close_gracefully()
            self.close()

    def on_reset(self, s: Stream) -> None:
        """The client gave the stream up: its handler stops (a fault's wait ends with it)."""
        for task, sid in self.tasks.items():
            if sid == s.id:
                task.cancel()
                break

    def on_lost(self) -> None:
        self._disarm_idle()
        for t in list(self.tasks):
            t.cancel()
        if self.origin is not None:
            self.origin.connection_lost(None)


async def _until(event: asyncio.Event) -> None:
    await event.wait()


def handoff(handler: StreamHandler, conn: ClientConnection, data: bytes) -> None:
    """Put an HTTP/2 connection in place of the HTTP/1.1 one that read `data` (the preface)."""
    tr = conn.transport
    if tr is None:
        return
    h2conn = H2ServerConnection(handler, conn.client_ip, conn.limits.idle_timeout, conn)
    tr.set_protocol(h2conn)
    h2conn.connection_made(tr)
    h2conn.data_received(data)
