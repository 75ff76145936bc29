"""The client-facing HTTP/2 connection: h2c with prior knowledge on the proxy's one port (an
`Upgrade: h2c` request becomes one too: `upgrade.py`).

The HTTP/1.1 listener (`downstream/listener.py`) reads the first bytes of every connection;
when they open with the HTTP/2 connection preface (`PRI * HTTP/2.0`) it hands the transport to
`handoff` here, which puts an `H2ServerConnection` in its place. Each request stream runs as
one task through the handler (`core.H2Core`). The listener's `ClientConnection` object stays
registered as the connection (it counts against --max-connections and a shutdown closes it);
it is told when the connection ends.

An idle connection (no stream open) is sent GOAWAY and closed after the listener's idle timeout;
a stop of the proxy drains every connection (`drain.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Protocol

from h2.events import (
    DataReceived,
    Event,
    PingAckReceived,
    PingReceived,
    PriorityUpdated,
    RemoteSettingsChanged,
    RequestReceived,
    UnknownFrameReceived,
)
from h2.settings import SettingCodes

from chaosproxy.proxy.h2.connection import MAX_CONCURRENT_STREAMS
from chaosproxy.proxy.h2.drain import DrainingWire
from chaosproxy.proxy.h2.headers import H2Headers
from chaosproxy.proxy.h2.limits import (
    CLOSE_LINGER,
    ENHANCE_YOUR_CALM,
    MAX_HEADER_BLOCK,
    Calm,
    why,
)
from chaosproxy.proxy.h2.stream import (
    INTERNAL_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    Stream,
)

if TYPE_CHECKING:
    from chaosproxy.proxy.downstream.listener import ClientConnection

log = logging.getLogger("chaosproxy.proxy")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_OPENING = len(PREFACE) + 9  # the preface and the header of the frame after it


class StreamHandler(Protocol):
    """What answers the streams (the `H2Core`)."""

    async def handle_stream(self, conn: H2ServerConnection, s: Stream) -> None: ...

    # Connections ended by each bound of `limits.py` (GOAWAY ENHANCE_YOUR_CALM), by reason
    calmed: dict[str, int]


class H2ServerConnection(DrainingWire):
    """One HTTP/2 client connection."""

    def __init__(
        self,
        handler: StreamHandler,
        client_ip: str,
        idle_timeout: float,
        origin: ClientConnection | None = None,
    ) -> None:
        super().__init__()
        self.handler = handler
        self.client_ip = client_ip
        self.origin = origin
        self.idle_timeout = idle_timeout
        self._idle: asyncio.TimerHandle | None = None
        self._quiet: asyncio.Event | None = None  # set when no stream is being answered
        self._opening: bytes | None = b""  # the client preface, until its SETTINGS was seen
        if origin is not None:
            origin.on_stop = self.stop  # the listener's close drains instead of closing

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.calm = Calm(asyncio.get_running_loop().time())
        self.task_of: dict[int, asyncio.Task[None]] = {}  # the task answering each stream
        # HPACK decodes up to MAX_HEADER_BLOCK, so that a list past what we announce
        # (MAX_HEADER_LIST) is still decoded whole and answered 431 (`limits.header_refusal`)
        self.h2.decoder.max_header_list_size = MAX_HEADER_BLOCK
        # h2 ends the whole connection on a stream past the cap it announced (a connection
        # error): the proxy refuses that stream alone instead (`open_stream`), as nghttp2 does.
        # Our SETTINGS went out with the cap; h2's own check moves past it.
        h2_cap = deque([2 * MAX_CONCURRENT_STREAMS])
        self.h2.local_settings._settings[SettingCodes.MAX_CONCURRENT_STREAMS] = h2_cap
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        """The client preface must be followed by a SETTINGS frame (RFC 9113 §3.4), which h2
        does not check: the first 33 bytes are held until that frame's header is seen."""
        opening = self._opening
        if opening is not None:
            opening += data
            if len(opening) < _OPENING:
                self._opening = opening
                return
            self._opening = None
            if opening.startswith(PREFACE) and (opening[27] != 0x4 or opening[28] & 0x1):
                log.info("HTTP/2 protocol error from the peer: no SETTINGS after the preface")
                self.h2.close_connection(error_code=PROTOCOL_ERROR)
                self.flush_now()
                self.close()
                return
            data = opening
        super().data_received(data)

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, RequestReceived):
            self.open_stream(ev.stream_id or 0, list(ev.headers or []), ev.stream_ended is not None)
        elif isinstance(ev, PingAckReceived):
            self.ping_acked(ev.ping_data)

    def open_stream(self, sid: int, headers: H2Headers, ended: bool, body: bytes = b"") -> None:
        """A request stream opened (by HEADERS, or by an h2c upgrade: stream 1, its body
        whole and outside flow control): answered by a task of its own."""
        if self.calm.reason:
            return  # past a bound: the connection is closing, nothing more starts
        s = Stream(sid, self.ack)
        s.head.set_result(headers)
        self.streams[sid] = s
        if body:
            s.feed(body, 0)
        if ended:
            s.feed_eof()
        if self._closing and self._stop is None:
            self.stop()  # handed over while the proxy stops (an upgrade): drained as well
        if len(self.streams) > MAX_CONCURRENT_STREAMS or (
            self.last_stream is not None and sid > self.last_stream
        ):  # past the streams allowed at once, or our GOAWAY: never processed, a client retries
            self.reset(s, REFUSED_STREAM)
            if not self.calm.reset(asyncio.get_running_loop().time()):
                self.calm_down()
            return
        self._disarm_idle()
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._run(s))
        self.tasks[task] = sid
        self.task_of[sid] = task
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
        sid = self.tasks.pop(task, None)
        if sid is not None:
            self.task_of.pop(sid, None)
        if self.tasks:
            return
        o, quiet = self.origin, self._quiet
        if o is not None and quiet is not None:
            o.busy = False
            o.task = None
            self._quiet = None
            quiet.set()
        if self.last_stream is not None or self.goaway:
            self.close()  # drained (our final GOAWAY went out already), or the client's GOAWAY
        elif self._closing:
            self.stop()
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

    def stopping(self, task: asyncio.Task[None]) -> None:
        o = self.origin
        if o is not None:
            o.busy = True  # what the listener waits for: the drain, not one busy period
            o.task = task

    def on_reset(self, s: Stream) -> None:
        """The client gave the stream up: its handler stops (a fault's wait ends with it),
        and what it held upstream goes with it. Counted against the connection's bound on
        resets (Rapid Reset: `limits.py`)."""
        task = self.task_of.get(s.id)
        if task is not None:
            task.cancel()
        if not self.calm.reset(asyncio.get_running_loop().time()):
            self.calm_down()

    # ------------------------------------------------------------ bounds (limits.py)

    def admit(self, events: list[Event]) -> bool:
        """Frames that carry no request (PING, SETTINGS, PRIORITY, unknown types, DATA with
        neither payload nor END_STREAM) spend the connection's control budget; those needing
        a reply, also its bound on replies queued while the client reads nothing. The header
        block waiting for its END_HEADERS is bounded too (h2 keeps up to 64 frames of it)."""
        calm = self.calm
        now = 0.0
        opened = -1
        for ev in events:
            kind = type(ev)
            if kind is DataReceived:
                if ev.data or ev.stream_ended is not None:  # type: ignore[attr-defined]
                    continue
                reply = False
            elif kind is PingReceived or kind is RemoteSettingsChanged:
                reply = True
            elif kind is RequestReceived:
                opened = ev.stream_id  # type: ignore[attr-defined]
                continue
            elif kind is PriorityUpdated:
                if ev.stream_id == opened:  # type: ignore[attr-defined]
                    continue  # the priority of a HEADERS frame: part of a request
                reply = False
            elif kind is UnknownFrameReceived:
                reply = False
            else:
                continue
            if not now:
                now = asyncio.get_running_loop().time()
            if not calm.frame(now, reply, self._paused):
                self.calm_down()
                return False
        block = self.h2.incoming_buffer._headers_buffer
        if block and sum(len(f.data) for f in block) > MAX_HEADER_BLOCK:
            calm.reason = "headers"
            self.calm_down()
            return False
        return True

    def resume_writing(self) -> None:
        super().resume_writing()
        self.calm.queued = 0  # the client reads again

    def on_calm(self, reason: str) -> None:
        calmed = self.handler.calmed
        calmed[reason] = calmed.get(reason, 0) + 1

    def calm_down(self) -> None:
        """Past a bound of `limits.py`: GOAWAY(ENHANCE_YOUR_CALM), and the connection closes
        (aborted when the client reads nothing: a close would wait for it to read)."""
        tr = self.transport
        if tr is None or tr.is_closing():
            return
        reason = self.calm.reason
        self.on_calm(reason)
        log.warning(
            "closed an HTTP/2 connection from %s (GOAWAY ENHANCE_YOUR_CALM): %s",
            self.client_ip,
            why(reason),
        )
        self.send_goaway(self.h2.highest_inbound_stream_id, ENHANCE_YOUR_CALM)
        if self._paused:
            tr.abort()
        else:
            tr.close()  # the GOAWAY is read, or the connection is cut a little later
            asyncio.get_running_loop().call_later(CLOSE_LINGER, tr.abort)

    def on_lost(self) -> None:
        self._disarm_idle()
        self.ended()
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
