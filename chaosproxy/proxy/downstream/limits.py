"""What a client may send, how long it may take, and how many connections it may hold.

`ListenerLimits` are the bounds the listener enforces (flags of `chaosproxy run`). A connection
over `max_connections` gets `Refusal`: a JSON 503 with `Connection: close` written the moment it
is accepted, then the connection is closed — a load balancer in front sees a clear, cheap answer
it can retry elsewhere, where pausing `accept()` would leave its connections in the kernel's
backlog, unanswered until its own timeout.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Protocol, cast

from chaosproxy.proxy.downstream.request import RequestError
from chaosproxy.proxy.downstream.responses import error_json, response_head

log = logging.getLogger("chaosproxy.proxy")

# Descriptors kept apart from client connections: the process's own (listeners, event loops,
# journal, logs), admin API clients, and connections being refused (at most _MAX_REFUSING).
FD_RESERVE = 128
# Refused connections waiting for their client to read the 503 and close; past this many, the
# one waiting longest is closed to make room (a flood must not eat the reserve).
_MAX_REFUSING = 64
# How long a refused connection waits for its client to close after the 503.
_REFUSAL_LINGER = 2.0
# Bytes a refused client may send (its request, discarded) before it is cut.
_REFUSAL_READ = 64 * 1024
# When the 503 was logged last: a flood of refusals logs one line per this many seconds.
_LOG_EVERY = 10.0


@dataclass(frozen=True)
class ListenerLimits:
    """Bounds on what a client may send and how long it may take."""

    header_timeout: float = 30.0  # from the first byte of a head (or the connection) to its end
    idle_timeout: float = 75.0  # keep-alive: between the end of a response and the next request
    body_timeout: float | None = 30.0  # longest silence in the middle of a request body; None: off
    send_timeout: float | None = 60.0  # a client that takes no response byte this long: closed
    max_connections: int | None = None  # open client connections; None: default_max_connections()
    max_target: int = 8 * 1024  # request target: 414 past it
    max_header_line: int = 8 * 1024  # one header, name and value: 431 past it
    max_head: int = 64 * 1024  # the whole head: 431 past it
    max_headers: int = 128  # header count: 431 past it


def open_file_limit() -> int:
    """The process's soft limit on open descriptors (RLIMIT_NOFILE); 'unlimited' counts as 2^20."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY or soft > 1 << 20 else soft


def default_max_connections(pool_size: int = 256) -> int:
    """Client connections that fit under the descriptor limit with the upstream pool (`pool_size`
    connections) and `FD_RESERVE` beside them: the proxy refuses with a 503 before the kernel
    refuses it a descriptor. A WebSocket counts twice (its own upstream connection)."""
    return max(16, open_file_limit() - pool_size - FD_RESERVE)


def fd_budget_warning(max_connections: int, pool_size: int) -> str | None:
    """Why `max_connections` may run the process out of descriptors, or None when it fits."""
    limit = open_file_limit()
    if max_connections + pool_size + FD_RESERVE <= limit:
        return None
    return (
        f"--max-connections {max_connections} plus --pool-size {pool_size} and {FD_RESERVE} "
        f"descriptors of the process's own exceed the open-file limit ({limit}, ulimit -n): "
        "past it new clients are not accepted at all; raise the limit or lower the cap"
    )


def check_framing(hosts: int, te: bytes | None, version: str) -> None:
    """Refuse a head two parsers could frame or route two ways (the parser already refuses
    Content-Length with Transfer-Encoding, and chunked before another coding). `te` is every
    Transfer-Encoding line of the head joined as one list: two lines mean what one line
    listing both means (RFC 9110 §5.3)."""
    if hosts > 1:
        raise RequestError(400, "more than one Host header")
    if hosts == 0 and version == "1.1":  # RFC 9112 §3.2: a server must answer 400 (nginx does)
        raise RequestError(400, "an HTTP/1.1 request must carry a Host header")
    if te is None:
        return
    if version == "1.0":
        raise RequestError(400, "Transfer-Encoding in an HTTP/1.0 request")
    codings = [c.strip().lower() for c in te.split(b",")]
    if codings != [b"chunked"]:
        if codings[-1] != b"chunked" or b"chunked" in codings[:-1]:
            raise RequestError(400, "the request body's length cannot be determined")
        raise RequestError(
            501,
            "transfer codings other than chunked are not supported: "
            + te.decode("latin-1", "replace")[:100],
        )


def error_response(status: int, details: str, rid: str, *extra: tuple[str, str]) -> bytes:
    """The proxy's JSON error as a whole response that closes the connection."""
    body = error_json(status, rid, details)
    head = response_head(
        status,
        None,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Request-Id", rid),
            *extra,
            ("Connection", "close"),
        ],
    )
    return head + body


class Admission(Protocol):
    """What a refused connection reads and counts on its listener (the `ProxyListener`)."""

    refusing: dict[Refusal, None]  # connections over the cap, answered 503; oldest first
    refused: int  # connections refused over the cap, ever
    refusal_logged: float  # when a refusal was logged last (loop time)
    max_connections: int

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def open_connections(self) -> int: ...

    def next_request_id(self) -> str: ...


class Refusal(asyncio.Protocol):
    """A client connection over the cap: a JSON 503 written at once, then closed.

    The answer goes out before the request is read (one write); the connection then shuts its
    sending side and discards what the client sends until it closes (at most
    `_REFUSAL_LINGER` seconds), so the client's kernel never turns unread bytes into a reset
    that would destroy the 503 before the client read it."""

    def __init__(self, listener: Admission) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.deadline = 0.0
        self._read = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr = self.transport = cast(asyncio.Transport, transport)
        listener = self.listener
        refusing = listener.refusing
        if len(refusing) >= _MAX_REFUSING:  # its 503 went out already: it had its chance
            next(iter(refusing)).abort()
        refusing[self] = None
        listener.refused += 1
        rid = listener.next_request_id()
        now = listener.loop.time()
        cap = listener.max_connections
        if now - listener.refusal_logged >= _LOG_EVERY:
            listener.refusal_logged = now
            log.warning(
                "refusing client connections with 503: %d open, the limit (--max-connections) "
                "is %d; %d refused so far [%s]",
                listener.open_connections,
                cap,
                listener.refused,
                rid,
                extra={"request_id": rid},
            )
        details = (
            f"chaosproxy has {cap} client connections open, its limit (--max-connections): "
            "try again shortly"
        )
        tr.write(error_response(503, details, rid, ("Retry-After", "1")))
        if tr.can_write_eof():
            tr.write_eof()
        self.deadline = now + _REFUSAL_LINGER

    def data_received(self, data: bytes) -> None:
        self._read += len(data)
        if self._read > _REFUSAL_READ:
            self.abort()

    def eof_received(self) -> bool | None:
        return None  # the client read the answer and closed: close

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.refusing.pop(self, None)

    def abort(self) -> None:
        self.listener.refusing.pop(self, None)
        if self.transport is not None:
            self.transport.abort()
