"""A raw HTTP/2 client (h2's state machine on a plain socket) for what grpcio hides: the frames
the proxy sends on a connection (GOAWAY and its last stream id, RST_STREAM codes, trailers-only
answers), event by event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import hpack
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tests.proxy.h2.conftest import SERVICE

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def grpc_message(payload: bytes) -> bytes:
    """One length-prefixed gRPC message, uncompressed."""
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class RawH2:
    """One client connection; `events` is everything the proxy sent, in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        self.reader, self.writer = reader, writer
        self.events: list[Event] = []
        self.eof = False
        self.conn.initiate_connection()
        self.send()

    @classmethod
    async def open(cls, port: int) -> RawH2:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def call(
        self,
        method: str = "Unary",
        body: bytes = b"",
        timeout: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        end: bool = True,
    ) -> int:
        """Open a gRPC call on a new stream; its id."""
        sid = self.conn.get_next_available_stream_id()
        fields = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", f"/{SERVICE}/{method}"),
            (":authority", "proxy"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *(() if timeout is None else (("grpc-timeout", timeout),)),
            *headers,
        ]
        self.conn.send_headers(sid, fields, end_stream=end and not body)
        if body:
            self.conn.send_data(sid, body, end_stream=end)
        self.send()
        return sid

    async def until(self, done: Callable[[list[Event]], bool]) -> list[Event]:
        """Read until `done(events)` holds (or the proxy closed the connection)."""
        while not done(self.events) and not self.eof:
            data = await self.reader.read(65536)
            if not data:
                self.eof = True
                break
            self.events += self.conn.receive_data(data)
            self.send()  # SETTINGS and PING acks, window updates
        return self.events

    async def until_eof(self) -> list[Event]:
        return await self.until(lambda _: False)

    async def ended(self, sid: int) -> list[Event]:
        """Read until stream `sid` ended or was reset; its events."""
        await self.until(lambda evs: any(_ends(e, sid) for e in evs))
        return self.of(sid)

    def of(self, sid: int) -> list[Event]:
        return [e for e in self.events if getattr(e, "stream_id", None) == sid]

    def goaways(self) -> list[ConnectionTerminated]:
        return [e for e in self.events if isinstance(e, ConnectionTerminated)]

    def close(self) -> None:
        self.writer.close()


def _ends(e: Event, sid: int) -> bool:
    return isinstance(e, StreamEnded | StreamReset) and e.stream_id == sid


def head_of(events: list[Event]) -> dict[str, str]:
    """The response head of a stream's events (a trailers-only answer is its only head)."""
    for e in events:
        if isinstance(e, ResponseReceived):
            return dict(e.headers or [])  # type: ignore[arg-type]
    return {}


def trailers_of(events: list[Event]) -> dict[str, str]:
    for e in events:
        if isinstance(e, TrailersReceived):
            return dict(e.headers or [])  # type: ignore[arg-type]
    return {}


def data_of(events: list[Event]) -> bytes:
    return b"".join(e.data or b"" for e in events if isinstance(e, DataReceived))


def reset_code(events: list[Event]) -> int | None:
    for e in events:
        if isinstance(e, StreamReset):
            return int(e.error_code or 0)
    return None


class FrameClient:
    """An HTTP/2 client at the frame level (hyperframe and hpack, no state machine): it keeps
    reading and sending after a GOAWAY, which h2's state machine refuses to do — what a
    client racing a drain does. `frames` is every frame the proxy sent, in order; a HEADERS
    frame's fields are in `headers[frame]`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.encoder, self.decoder = hpack.Encoder(), hpack.Decoder()
        self.frames: list[Frame] = []
        self.headers: dict[int, dict[str, str]] = {}  # id(frame) -> its fields
        self.eof = False
        self.next_id = 1
        writer.write(PREFACE + SettingsFrame(0).serialize())

    @classmethod
    async def open(cls, port: int) -> FrameClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def call(self, method: str = "Unary", body: bytes = b"") -> int:
        """A gRPC call on a new stream (HEADERS, then its DATA with END_STREAM); its id."""
        sid, self.next_id = self.next_id, self.next_id + 2
        fields = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", f"/{SERVICE}/{method}"),
            (":authority", "proxy"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        head = HeadersFrame(sid, self.encoder.encode(fields), flags=["END_HEADERS"])
        data = DataFrame(sid, body, flags=["END_STREAM"])
        self.writer.write(head.serialize() + data.serialize())
        return sid

    async def until(self, done: Callable[[list[Frame]], bool]) -> list[Frame]:
        """Read frames until `done(frames)` holds or the connection closed."""
        while not done(self.frames) and not self.eof:
            try:
                head = await self.reader.readexactly(9)
                frame, length = Frame.parse_frame_header(memoryview(head))
                frame.parse_body(memoryview(await self.reader.readexactly(length)))
            except (asyncio.IncompleteReadError, ConnectionError):
                self.eof = True
                break
            self.frames.append(frame)
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                self.writer.write(SettingsFrame(0, flags=["ACK"]).serialize())
            elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
                self.writer.write(PingFrame(0, frame.opaque_data, flags=["ACK"]).serialize())
            elif isinstance(frame, HeadersFrame):
                decoded = self.decoder.decode(bytes(frame.data))
                self.headers[id(frame)] = {str(k): str(v) for k, v in decoded}
        return self.frames

    async def ended(self, sid: int) -> list[Frame]:
        """Frames until stream `sid` ended (END_STREAM) or was reset; its frames."""

        def over(frames: list[Frame]) -> bool:
            return any(
                f.stream_id == sid and (isinstance(f, RstStreamFrame) or "END_STREAM" in f.flags)
                for f in frames
            )

        await self.until(over)
        return [f for f in self.frames if f.stream_id == sid]

    async def until_eof(self) -> list[Frame]:
        return await self.until(lambda _: False)

    def goaways(self) -> list[GoAwayFrame]:
        return [f for f in self.frames if isinstance(f, GoAwayFrame)]

    def close(self) -> None:
        self.writer.close()
