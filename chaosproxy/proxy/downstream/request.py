"""One client request as the listener parsed it: its head (the view rules and faults read) and
its body, streamed as it arrives with a bounded buffer."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote

from multidict import CIMultiDict, CIMultiDictProxy
from mypy_extensions import mypyc_attr

if TYPE_CHECKING:
    from chaosproxy.engine.decide import Decision

# Request body bytes buffered before the connection stops reading, and where it resumes.
BODY_HIGH_WATER = 256 * 1024
BODY_LOW_WATER = 64 * 1024


class RequestError(Exception):
    """What the client sent cannot be served: answered with `status` (400, 408, 414, 431, 501)
    and the connection closes. Raised from the listener's parser callbacks, and the error a
    request body fails with when its framing breaks or it stalls."""

    def __init__(self, status: int, details: str) -> None:
        super().__init__(details)
        self.status = status
        self.details = details


class Waited(Protocol):
    """A request's delay, waited for already (delayed.py): what `handle` still needs of it."""

    @property
    def decision(self) -> Decision: ...
    @property
    def mark(self) -> str | None: ...

    def release(self) -> None:
        """The request ended: its guardrail slot is free again."""


class RequestHead:
    """The request line and headers exactly as received (names keep their spelling and order).

    Derived views (decoded path, case-insensitive headers) are computed on first use only:
    pass-through traffic never pays for what no rule looks at.
    """

    __slots__ = (
        "_decoded",
        "_headers",
        "_path",
        "client_ip",
        "decided",
        "decision",
        "expect_continue",
        "keep_alive",
        "method",
        "raw",
        "request_id",
        "run",
        "t0",
        "target",
        "upgrade",
        "version",
        "waited",
    )

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        raw: list[tuple[bytes, bytes]],
        client_ip: str,
        t0: float,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.raw = raw  # as received: the pass-through path forwards them undecoded
        self._decoded: list[tuple[str, str]] | None = None
        self.client_ip = client_ip
        self.t0 = t0  # arrival on the proxy's clock (monotonic): when the head was parsed
        self.keep_alive = True
        self.request_id = ""  # X-Request-Id as the client sent it ("" when it did not)
        self.run = ""  # X-Chaos-Run: the experiment run that sent it ("" for other traffic)
        self.upgrade = False
        self.expect_continue = False
        # The engine's decision, once taken (the relay decides before the request is queued
        # for the awaiting path; one decision per request: rule counts stay exact).
        self.decided = False
        self.decision: Decision | None = None
        # A delayed relay whose wait is over (delayed.py): `handle` forwards the request
        # without applying its faults again.
        self.waited: Waited | None = None
        self._headers: CIMultiDictProxy[str] | None = None
        self._path: str | None = None

    @property
    def raw_headers(self) -> list[tuple[str, str]]:
        """The headers decoded (latin-1), names as sent and order kept."""
        d = self._decoded
        if d is None:
            d = self._decoded = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw]
        return d

    @property
    def multidict(self) -> CIMultiDictProxy[str]:
        """Every header, case-insensitive, built once on first use (what faults read)."""
        h = self._headers
        if h is None:
            h = self._headers = CIMultiDictProxy(CIMultiDict(self.raw_headers))
        return h

    @property
    def headers(self) -> Mapping[str, str]:
        """What a rule's `match` reads: a lookup scans the raw headers (a rule looks at one
        or two of them), nothing is built for it."""
        return _HeaderView(self)

    def header(self, name: str) -> str | None:
        """The first value of `name` (lower-case), without building the multidict."""
        if self._headers is not None:
            return self._headers.get(name)
        n = len(name)
        key = name.encode("latin-1")
        for k, v in self.raw:
            if len(k) == n and k.lower() == key:
                return v.decode("latin-1")
        return None

    @property
    def raw_path(self) -> str:
        """The path part of the target, still encoded (an absolute-form target loses its
        scheme and authority)."""
        t = self.target
        if not t.startswith("/"):
            scheme, sep, rest = t.partition("://")
            if sep and scheme.lower() in ("http", "https"):
                t = origin_form(rest)
        path, _, _ = t.partition("?")
        return path

    @property
    def path(self) -> str:
        p = self._path
        if p is None:
            raw = self.raw_path
            p = self._path = unquote(raw) if "%" in raw else raw  # (what unquote returns)
        return p

    @property
    def query_string(self) -> str:
        """The query exactly as sent (still encoded; `parse_qsl` decodes it)."""
        _, _, q = self.target.partition("?")
        q, _, _ = q.partition("#")
        return q


class _HeaderView(Mapping[str, str]):
    """A request's headers as a read-only mapping, case-insensitive, first value of a name;
    a lookup scans the raw headers, a walk over all of them uses the multidict."""

    __slots__ = ("_head",)

    def __init__(self, head: RequestHead) -> None:
        self._head = head

    def __getitem__(self, name: str) -> str:
        value = self._head.header(name.lower())
        if value is None:
            raise KeyError(name)
        return value

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        value = self._head.header(name.lower())
        return default if value is None else value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._head.header(name.lower()) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._head.multidict)

    def __len__(self) -> int:
        return len(self._head.multidict)


def origin_form(rest: str) -> str:
    """An absolute-form target after its `scheme://` as the origin-form the upstream gets:
    the authority ends at the first `/`, `?` or `#` (RFC 3986 §3.2), and an empty path is `/`,
    so `http://h?x=1` keeps its query (`/?x=1`, as nginx sends it) and a `/` inside the query
    of `http://h?x=/y` is not taken for the path."""
    for i, c in enumerate(rest):
        if c == "/":
            return rest[i:]
        if c in "?#":
            return "/" + rest[i:]
    return "/"


class BodySource(Protocol):
    """The connection a body arrives on (the listener's `ClientConnection`): what the body's
    buffer asks of it."""

    def send_continue(self) -> None:
        """Answer `Expect: 100-continue`: the body is wanted now."""

    def pause_body(self) -> None:
        """Stop reading from the socket: the buffer is full."""

    def resume_body(self) -> None:
        """Read again: the reader caught up."""


@mypyc_attr(allow_interpreted_subclasses=True)  # an HTTP/2 stream is Python (chaosproxy.native)
class OneReader:
    """A buffer one reader waits on: it parks until the producer wakes it (data, the end, an
    error). Shared by the request body here and an HTTP/2 stream (`proxy.h2.stream`)."""

    __slots__ = ("_waiter",)

    _waiter: asyncio.Future[None] | None  # set to None by the subclass's constructor

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _park(self) -> None:
        """Until the producer calls `_wake` (a cancelled reader stops waiting)."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


class RequestBody(OneReader):
    """The request body as it arrives, for one reader: chunks are buffered up to a high-water
    mark, past which the connection stops reading from the socket until the reader catches up.

    With `Expect: 100-continue`, the first read sends `100 Continue`: the client sends its
    body only once something wants it.
    """

    __slots__ = (
        "_chunks",
        "_conn",
        "_continue",
        "_eof",
        "_exc",
        "_size",
        "received",
    )

    def __init__(self, conn: BodySource, expect_continue: bool) -> None:
        self._conn = conn
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._exc: BaseException | None = None
        self._waiter = None
        self._continue: Callable[[], None] | None = conn.send_continue if expect_continue else None
        self.received = 0

    # ------------------------------------------------------------ the listener's side

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        self.received += len(data)
        if self._size > BODY_HIGH_WATER:
            self._conn.pause_body()
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if not self._eof:
            self._exc = exc
            self._wake()

    # ------------------------------------------------------------ the reader's side

    @property
    def complete(self) -> bool:
        """Every byte of the body arrived (it may still be buffered here)."""
        return self._eof

    @property
    def error(self) -> RequestError | None:
        """Why the client's body broke off (bad framing, a stall), when it did: the request is
        answered with its status, not as an upstream failure."""
        exc = self._exc
        return exc if isinstance(exc, RequestError) else None

    def take(self) -> bytes:
        """What is buffered now, without waiting (an h2c upgrade hands it to HTTP/2)."""
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        return data

    def whole(self) -> bytes | None:
        """The whole body when it already arrived (a small request): one write upstream."""
        if not self._eof:
            return None
        chunks = self._chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        return data

    async def buffered(self) -> None:
        """Until the body is whole, or fills the buffer (then reading pauses and the rest
        streams): what the proxy waits for before it takes an upstream connection, so a slow
        upload holds its own client connection (bounded by --body-timeout between bytes and
        --max-connections), never a connection of the upstream pool. nginx reads the whole
        body first (proxy_request_buffering); HAProxy's `option http-buffer-request` a buffer
        as here. Raises what the body failed with (a stall: 408; the client gone)."""
        if self._continue is not None:
            self._continue()
            self._continue = None
        while not self._eof and self._exc is None and self._size <= BODY_HIGH_WATER:
            await self._park()
        if self._exc is not None:
            raise self._exc

    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        if self._continue is not None:
            self._continue()
            self._continue = None
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                if self._size > BODY_LOW_WATER or not self._eof:
                    self._conn.resume_body()
                self._size = 0
                return data
            if self._exc is not None:
                raise self._exc
            if self._eof:
                raise StopAsyncIteration
            await self._park()
