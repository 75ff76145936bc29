"""One HTTP/2 connection driven from an asyncio protocol: h2's `H2Connection` (sans-IO) fed
with the bytes read, its frames written out, its events dispatched to the streams.

Flow control both ways: inbound DATA is acknowledged (its window reopened) only when the
stream's reader moved past it (`stream.Stream`); outbound DATA is cut to the peer's window and
its frame size, and `send_data` waits for WINDOW_UPDATEs, and for the transport to drain, so
a slow peer holds back the sender instead of our memory. The server side (`server.py`) and the
upstream client (`client.py`) differ only in what opens a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RemoteSettingsChanged,
    StreamEnded,
    TrailersReceived,
    WindowUpdated,
)
from h2.events import StreamReset as ResetEvent
from h2.exceptions import DenialOfServiceError, H2Error, ProtocolError
from h2.settings import SettingCodes, Settings
from hpack import HPACKError
from hyperframe.frame import Frame, GoAwayFrame

from chaosproxy.proxy.h2.headers import H2Headers
from chaosproxy.proxy.h2.limits import ENHANCE_YOUR_CALM
from chaosproxy.proxy.h2.stream import CANCEL, REFUSED_STREAM, Stream, StreamReset

log = logging.getLogger("chaosproxy.proxy")

# Our receive windows: a stream may have this much unacknowledged DATA in flight (the HTTP/1.1
# listener's body buffer is the same size), the connection a few streams' worth.
STREAM_WINDOW = 256 * 1024
CONNECTION_WINDOW = 4 * 1024 * 1024
MAX_CONCURRENT_STREAMS = 256
MAX_HEADER_LIST = 64 * 1024  # as the HTTP/1.1 listener's largest head
# DATA frames a peer may send us: larger than the 16 KiB default, so a big message costs a few
# frames to parse instead of dozens (the windows bound what is in flight either way).
MAX_FRAME = 256 * 1024
_WRITE_HIGH_WATER = 64 * 1024
LOCAL_SETTINGS = {
    SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
    SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
    SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
    SettingCodes.MAX_FRAME_SIZE: MAX_FRAME,
}
COMPRESSION_ERROR = 0x9
MAX_STREAM_ID = 2**31 - 1


class H2Wire(asyncio.Protocol):
    """Frames in, frames out; streams by id. Subclasses handle the events that open streams
    (`on_event`) and the end of the connection (`on_lost`)."""

    def __init__(self, client_side: bool) -> None:
        h2 = H2Connection(
            H2Configuration(client_side=client_side, header_encoding=None)  # bytes, as sent
        )
        # Our settings go in the first SETTINGS frame and hold from the start. Sent as a later
        # update, they would count only from the peer's ACK, and h2 checks the frame size of a
        # whole read against the limit before that read's ACK: a peer that sends the ACK and
        # its first large DATA frame in one segment (grpcio's sync client does) would get
        # FRAME_SIZE_ERROR. Accepting larger frames before the peer knows it is harmless.
        h2.local_settings = Settings(client=client_side, initial_values=LOCAL_SETTINGS)
        h2.max_inbound_frame_size = MAX_FRAME
        # A peer's GOAWAY is read here, not by h2: h2 takes its state machine to CLOSED on
        # one, after which every frame of the streams still in flight (their DATA, their
        # answer) is a protocol error. A GOAWAY says "no new streams"; those below its last
        # stream id finish (RFC 9113 §6.8).
        h2._frame_dispatch_table[GoAwayFrame] = _goaway_frame
        self.h2 = h2
        self.streams: dict[int, Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.goaway = False  # the peer said GOAWAY: no new streams here
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self._flush_due = False

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr = cast(asyncio.Transport, transport)
        self.transport = tr
        tr.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        h2 = self.h2
        self.initiate()  # our SETTINGS: LOCAL_SETTINGS
        h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.flush()

    def initiate(self) -> None:
        """Our connection preface (an h2c upgrade's also takes the client's HTTP2-Settings)."""
        self.h2.initiate_connection()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as e:
            log.info("HTTP/2 protocol error from the peer: %s", e)
            if isinstance(e, DenialOfServiceError) or str(e).startswith("Too many continuation"):
                self._recode_goaway(ENHANCE_YOUR_CALM)  # h2's bounds on a header block
                self.on_calm("headers")
            elif isinstance(e.__cause__, HPACKError):
                self._recode_goaway(COMPRESSION_ERROR)
            self.flush_now()  # the GOAWAY h2 prepared
            self.close()
            return
        if not self.admit(events):
            return
        for ev in events:
            self._dispatch(ev)
        self.flush()

    def admit(self, events: list[Event]) -> bool:
        """False when what the peer sent is past a bound (the connection is ending): the
        server's bounds on a client (`server.py`, `limits.py`); the upstream is not bounded."""
        return True

    def on_calm(self, reason: str) -> None:
        """A bound of `limits.py` ended the connection (the server counts them)."""

    def _recode_goaway(self, code: int) -> None:
        """h2 answers a header block it cannot decode with GOAWAY(PROTOCOL_ERROR); RFC 9113
        §4.3 wants COMPRESSION_ERROR. The GOAWAY is the last frame h2 has ready (9 bytes of
        frame header, last stream id, error code): its code is replaced."""
        data = self.h2.data_to_send()
        if len(data) >= 17 and data[-17:-13] == b"\x00\x00\x08\x07":
            data = data[:-4] + code.to_bytes(4, "big")
        tr = self.transport
        if data and tr is not None and not tr.is_closing():
            tr.write(data)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        d = self._drain
        if d is not None and not d.done():
            d.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.resume_writing()
        for s in list(self.streams.values()):
            s.fail(CANCEL)
        self.streams.clear()
        self.on_lost()

    # ------------------------------------------------------------ events

    def _dispatch(self, ev: Event) -> None:
        if isinstance(ev, DataReceived):
            sid = ev.stream_id or 0
            flow = ev.flow_controlled_length or 0
            s = self.streams.get(sid)
            if s is not None:
                s.feed(ev.data or b"", flow)
            elif flow:
                self.ack(sid, flow)
            if ev.stream_ended is not None and s is not None:
                s.feed_eof()
        elif isinstance(ev, StreamEnded):
            s = self.streams.get(ev.stream_id or 0)
            if s is not None:
                s.feed_eof()
        elif isinstance(ev, TrailersReceived):
            s = self.streams.get(ev.stream_id or 0)
            if s is not None:
                s.trailers = list(cast(H2Headers, ev.headers or []))
        elif isinstance(ev, ResetEvent):
            s = self.streams.pop(ev.stream_id or 0, None)
            if s is not None:
                s.fail(ev.error_code or 0)
                self.on_reset(s)
        elif isinstance(ev, WindowUpdated):
            self._window_opened(ev.stream_id or 0)
        elif isinstance(ev, RemoteSettingsChanged):
            self._window_opened(0)  # the initial window may have grown
        elif isinstance(ev, ConnectionTerminated):
            self.goaway = True
            last = ev.last_stream_id or 0
            ours = 1 if self.h2.config.client_side else 0  # its last id counts streams we opened
            for sid, s in list(self.streams.items()):
                if sid > last and sid % 2 == ours:  # never processed: as if refused (retried)
                    self.streams.pop(sid, None)
                    s.fail(REFUSED_STREAM)
            self.on_goaway()
        else:
            self.on_event(ev)

    def on_event(self, ev: Event) -> None:
        """Events that open streams or carry their heads (the subclass's)."""

    def on_reset(self, s: Stream) -> None:
        """The peer reset stream `s`."""

    def on_lost(self) -> None:
        """The connection is gone (every stream failed already)."""

    def on_goaway(self) -> None:
        """The peer will open or accept no new streams here; those in flight go on."""

    def _window_opened(self, stream_id: int) -> None:
        targets = self.streams.values() if stream_id == 0 else [self.streams.get(stream_id)]
        for s in targets:
            if s is not None and s.window is not None and not s.window.done():
                s.window.set_result(None)

    # ------------------------------------------------------------ sending

    def flush(self) -> None:
        """Frames out, at the end of this turn of the loop: the frames several streams (or
        one stream's head, DATA and trailers) produce in one turn leave in one write."""
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self.flush_now)

    def flush_now(self) -> None:
        self._flush_due = False
        data = self.h2.data_to_send()
        tr = self.transport
        if data and tr is not None and not tr.is_closing():
            tr.write(data)

    def ack(self, stream_id: int, n: int) -> None:
        """The reader forwarded `n` flow-controlled bytes of the stream: reopen the window."""
        if self.closed or not n:
            return
        with contextlib.suppress(H2Error):
            self.h2.acknowledge_received_data(n, stream_id)
            self.flush()

    async def drain(self) -> None:
        while self._paused and not self.closed:
            if self._drain is None or self._drain.done():
                self._drain = asyncio.get_running_loop().create_future()
            await self._drain
        if self.closed:
            raise ConnectionResetError("the HTTP/2 connection closed")

    def send_headers(self, s: Stream, headers: H2Headers, end: bool = False) -> None:
        self._alive(s)
        self.h2.send_headers(s.id, headers, end_stream=end)
        self.flush()

    async def send_data(self, s: Stream, data: bytes, end: bool = False) -> None:
        """Send `data` within the peer's windows (waiting for them to open), then END_STREAM
        when `end`. Frames go out in one write per window's worth."""
        h2 = self.h2
        view = memoryview(data)
        while view:
            self._alive(s)
            window = min(h2.local_flow_control_window(s.id), h2.max_outbound_frame_size)
            if window <= 0:
                self.flush()
                s.window = asyncio.get_running_loop().create_future()
                try:
                    await s.window
                finally:
                    s.window = None
                continue
            n = min(window, len(view))
            h2.send_data(s.id, view[:n].tobytes(), end_stream=end and n == len(view))
            view = view[n:]
            if self._paused:
                self.flush_now()
                await self.drain()
        if end and not data:
            self._alive(s)
            h2.end_stream(s.id)
        self.flush()

    def end_stream(self, s: Stream, trailers: H2Headers | None = None) -> None:
        self._alive(s)
        if trailers:
            self.h2.send_headers(s.id, trailers, end_stream=True)
        else:
            self.h2.end_stream(s.id)
        self.flush()

    def reset(self, s: Stream, code: int) -> None:
        """RST_STREAM with `code`; the stream's unread DATA goes back to the window."""
        self.streams.pop(s.id, None)
        s.fail(code)
        if not self.closed:
            with contextlib.suppress(H2Error):
                self.h2.reset_stream(s.id, error_code=code)
            self.flush()

    def forget(self, s: Stream) -> None:
        """Done with a stream both ways (ended, not reset)."""
        s.release()
        self.streams.pop(s.id, None)

    def _alive(self, s: Stream) -> None:
        if s.reset_code is not None:
            raise StreamReset(s.reset_code)
        if self.closed:
            raise StreamReset(CANCEL, "the HTTP/2 connection closed")

    def close(self) -> None:
        tr = self.transport
        if tr is not None and not tr.is_closing():
            tr.close()

    def send_goaway(self, last_stream_id: int, code: int = 0) -> None:
        """A GOAWAY frame written after the frames h2 has ready, h2's state left as it is:
        its own `close_connection` takes the connection to CLOSED, after which the streams
        in flight could send nothing more (a drain needs them to finish)."""
        tr = self.transport
        if self.closed or tr is None or tr.is_closing():
            return
        self.flush_now()
        frame = GoAwayFrame(0, last_stream_id=last_stream_id, error_code=code)
        tr.write(frame.serialize())

    def close_gracefully(self, code: int = 0) -> None:
        """GOAWAY(the last stream the peer opened, `code`), written raw as `send_goaway` does:
        the streams open may still finish, no new ones are accepted."""
        self.send_goaway(self.h2.highest_inbound_stream_id or 0, code)

    def stats(self) -> dict[str, Any]:
        return {"streams": len(self.streams)}


def _goaway_frame(frame: GoAwayFrame) -> tuple[list[Frame], list[Event]]:
    """h2's handler of a received GOAWAY, minus its move to CLOSED and its dropping of the
    frames not yet written: the same `ConnectionTerminated` event, nothing else."""
    ev = ConnectionTerminated()
    ev.error_code = frame.error_code
    ev.last_stream_id = frame.last_stream_id
    ev.additional_data = frame.additional_data or None
    return [], [ev]
