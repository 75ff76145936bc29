"""Forwarding to the upstream, behind one small interface.

`Upstream.request()` sends one request and returns once the status line and headers arrived; the
body streams from `UpstreamResponse.body()`. `Upstream.upgrade()` sends an upgrade request on a
connection of its own and hands that connection over (`Tunnel`). The implementation is
`client.NativeUpstream`; the downstream half sees only these protocols (mypy checks it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import yarl

from chaosproxy.common.errors import UpstreamError


@dataclass(frozen=True)
class UpstreamConfig:
    url: yarl.URL
    pool_size: int = 256
    connect_timeout: float = 5.0
    timeout: float = 30.0  # until the status line and headers arrive: 504 past it
    read_timeout: float | None = None  # idle gap allowed while streaming a body
    keepalive: float = 30.0
    ca_file: str | None = None
    insecure: bool = False
    # The response head (status line and headers), as the listener bounds a request's head:
    # past either, a 502 and the connection is closed.
    max_head: int = 64 * 1024
    max_headers: int = 128


class OutgoingBody(Protocol):
    """A request body to forward (the listener's `RequestBody`)."""

    def whole(self) -> bytes | None:
        """Every byte, when all already arrived (then one write); else None (then stream it)."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class UpstreamBody(Protocol):
    """A response body, chunk by chunk as it arrives."""

    @property
    def complete(self) -> bool:
        """Every byte already arrived (buffered here): the first read takes it all."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def __anext__(self) -> bytes: ...

    async def aclose(self) -> None:
        """Give the body up; one not read to its end closes its connection."""
        ...


class UpstreamResponse(Protocol):
    """An upstream's answer once its head arrived.

    The end-to-end header lines are kept as received (`head_lines`: name, colon, value, CRLF
    each), so a reply no fault looks at goes back without being decoded; `headers` decodes them.
    """

    status: int
    reason_bytes: bytes
    head_lines: bytes
    has_length: bool  # Content-Length among the end-to-end headers
    has_id: bool  # X-Request-Id among them
    retry_after: bytes | None

    @property
    def reason(self) -> str: ...

    @property
    def headers(self) -> list[tuple[str, str]]:
        """End-to-end headers only, in the upstream's order and spelling."""
        ...

    def body(self) -> UpstreamBody: ...

    def release(self) -> None:
        """Done with this response: a body read to its end has gone back to the pool already;
        one that was not closes its connection."""
        ...


class Stale(Exception):
    """A reused keep-alive connection was closed by the upstream before any response byte:
    the request may be sent again on a fresh connection."""


class Sink(Protocol):
    """Who takes an answer as it is parsed, instead of awaiting it (`client.send_now`)."""

    def head(self, resp: UpstreamResponse) -> None:
        """The final head arrived (`resp.status`, `head_lines`...); the body follows."""

    def body(self, data: bytes) -> None:
        """A piece of the body (the connection pauses reading when the sink asks it to)."""

    def flush(self) -> None:
        """One read from the upstream was parsed: what the calls above gathered may leave."""

    def end(self) -> None:
        """Every byte arrived; the connection already went back to the pool."""

    def failed(self, error: UpstreamError | Stale) -> None:
        """Over without a complete answer (before or after the head); the connection is closed."""


class Tunnel(Protocol):
    """An upstream connection an upgrade request went out on, once its answer's head arrived:
    the head as received, then raw bytes both ways. Never goes back to the pool."""

    status: int
    reason: str
    head: bytes  # the answer's head as received, through its blank line
    raw_headers: list[tuple[bytes, bytes]]  # every header of that head, as received

    async def read(self) -> bytes:
        """The next bytes from the upstream; b"" once it closed."""
        ...

    async def read_exactly(self, n: int) -> bytes:
        """`n` bytes from the upstream; b"" when it closes before they all arrived."""
        ...

    async def send(self, data: bytes) -> None:
        """Write to the upstream, waiting while its connection is full."""

    def send_eof(self) -> None:
        """Nothing more goes upstream (a half-close, where the transport has one)."""

    def close(self) -> None: ...


class Upstream(Protocol):
    config: UpstreamConfig

    async def request(
        self,
        method: str,
        target: str,
        lines: bytes,
        has_host: bool,
        has_length: bool,
        body: OutgoingBody | None,
    ) -> UpstreamResponse:
        """Send one request (its header lines as bytes: name, colon, value, CRLF each; whether
        they carry Host and Content-Length) and return once the response head arrived."""
        ...

    async def upgrade(
        self, method: str, target: str, lines: bytes, has_host: bool, protocol: str
    ) -> Tunnel:
        """Send an upgrade request (`Upgrade: protocol`) on a connection of its own; the
        connection once the answer's head arrived, whatever its status."""
        ...

    async def reachable(self) -> bool: ...

    async def close(self) -> None: ...
