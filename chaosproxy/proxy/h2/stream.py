"""What the peer sends on one HTTP/2 stream: its head, its DATA as it arrives, its trailers.

The DATA a stream buffers is flow-controlled: the peer may send only what our window allows,
and the window opens again only when the reader *acknowledges* what it took. The reader
acknowledges a chunk by asking for the next one (it forwarded the previous one meanwhile), so
a slow destination slows the sender down to its pace instead of filling our memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from chaosproxy.proxy.downstream.request import OneReader
from chaosproxy.proxy.h2.headers import H2Headers

# RST_STREAM error codes (RFC 9113 §7) the proxy uses by name.
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
REFUSED_STREAM = 0x7
CANCEL = 0x8


class StreamReset(ConnectionError):
    """The peer reset the stream (RST_STREAM, or its connection went away): `code` says why."""

    def __init__(self, code: int, details: str = "") -> None:
        super().__init__(details or f"stream reset (error code {code})")
        self.code = code


class Stream(OneReader):
    """The inbound half of one stream, for one reader.

    `ack(stream_id, n)` is the connection's window update: called for each chunk once the
    reader moved past it, and for every unread byte when the stream is given up."""

    __slots__ = (
        "_ack",
        "_chunks",
        "_pending",
        "ended",
        "gate",
        "head",
        "id",
        "reset_code",
        "trailers",
        "window",
    )

    def __init__(self, stream_id: int, ack: Callable[[int, int], None]) -> None:
        self.id = stream_id
        self._ack = ack
        self.head: asyncio.Future[H2Headers] = asyncio.get_running_loop().create_future()
        self._chunks: deque[tuple[bytes, int]] = deque()
        self._pending = 0  # flow-controlled bytes handed out and not yet acknowledged
        self._waiter = None
        self.ended = False  # the peer sent END_STREAM
        self.reset_code: int | None = None
        self.trailers: H2Headers | None = None
        # Woken when the peer opens our send window on this stream (or the connection's).
        self.window: asyncio.Future[None] | None = None
        # Awaited by `read` with the bytes just forwarded, before they are acknowledged: a
        # fault (`upload_stall`) that keeps the peer's window shut holds the reader here.
        self.gate: Callable[[int], Awaitable[None]] | None = None

    # ------------------------------------------------------------ the connection's side

    def feed(self, data: bytes, flow: int) -> None:
        if self.reset_code is not None:
            self._ack(self.id, flow)  # given up: the connection window must not shrink
            return
        self._chunks.append((data, flow))
        self._wake()

    def feed_eof(self) -> None:
        self.ended = True
        self._wake()

    def fail(self, code: int) -> None:
        """Reset by the peer or the connection lost: readers and writers stop."""
        if self.reset_code is None:
            self.reset_code = code
        if not self.head.done():
            self.head.set_exception(StreamReset(code))
            self.head.exception()  # retrieved: nobody may be waiting for it
        self.release()
        self._wake()
        w = self.window
        if w is not None and not w.done():
            w.set_result(None)

    # ------------------------------------------------------------ the reader's side

    async def read(self) -> bytes | None:
        """The DATA that arrived since the last read (one chunk, or several joined); None at
        the end of the stream (then `trailers` is set if the peer sent any). Acknowledges what
        was handed out before. Raises `StreamReset`."""
        if self.gate is not None:
            await self.gate(self._pending)
        if self._pending:
            n, self._pending = self._pending, 0
            self._ack(self.id, n)
        while True:
            chunks = self._chunks
            if chunks:
                if len(chunks) == 1:
                    data, flow = chunks.popleft()
                else:  # what arrived meanwhile goes on in one write
                    data = b"".join(d for d, _ in chunks)
                    flow = sum(f for _, f in chunks)
                    chunks.clear()
                self._pending = flow
                return data
            if self.reset_code is not None:
                raise StreamReset(self.reset_code)
            if self.ended:
                return None
            await self._park()

    async def fill(self, limit: int, silence: float | None) -> None:
        """Until the stream ended, or `limit` flow-controlled bytes wait unread, or it was
        reset. Raises TimeoutError when the peer sends nothing for `silence` seconds."""
        while self.reset_code is None and not self.ended:
            if sum(f for _, f in self._chunks) >= limit:
                return
            async with asyncio.timeout(silence):
                await self._park()

    def release(self) -> None:
        """Give up what is unread: its bytes go back to the peer's window."""
        n = self._pending + sum(f for _, f in self._chunks)
        self._pending = 0
        self._chunks.clear()
        if n:
            self._ack(self.id, n)

    @property
    def buffered(self) -> int:
        return sum(len(d) for d, _ in self._chunks)
