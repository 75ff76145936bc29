"""`Upgrade: h2c` (RFC 7540 §3.2): an HTTP/1.1 request on the plain listener that asks for
HTTP/2 gets `101 Switching Protocols`, then the connection speaks HTTP/2 and the request is
stream 1 (half-closed remote), answered through the per-stream path like any other stream.

The listener (`downstream/listener.py`) calls `take_over` for a request it parsed as an upgrade,
in its turn (the requests before it answered first). We take it when the request is a valid
h2c upgrade: HTTP/1.1, not over TLS (RFC 7540 §3.3: h2c is cleartext only), `Upgrade` lists
`h2c`, `Connection` lists `Upgrade` and `HTTP2-Settings`, exactly one `HTTP2-Settings` whose
value is base64url of a valid SETTINGS payload, a target that is a path, and a body (if any)
with a Content-Length of at most 256 KiB, read whole first (the client sends it all before any
HTTP/2 frame; nghttpx does the same), which becomes stream 1's DATA.

Any other request without a body that names `h2c` is answered over HTTP/1.1 as if it had not
asked (the RFC lets a server ignore an upgrade, and requires it for a missing, repeated or
malformed `HTTP2-Settings`, and for `h2c` over TLS), and its connection closes after the
answer. One with a body is refused (400) as before: the parser took the bytes after the head
for the new protocol's, so the body cannot be read back as HTTP/1.1. An `Upgrade` without
`h2c` (WebSocket) is not ours: the listener relays it as before, and so is one that lists
another protocol beside an `h2c` we do not take.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from typing import TYPE_CHECKING

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.exceptions import H2Error
from hyperframe.exceptions import HyperframeError

from chaosproxy.proxy.downstream.limits import error_response
from chaosproxy.proxy.downstream.request import BODY_HIGH_WATER, origin_form
from chaosproxy.proxy.h2.headers import H2Headers, end_to_end_h2
from chaosproxy.proxy.h2.server import H2ServerConnection, StreamHandler

if TYPE_CHECKING:
    from chaosproxy.proxy.downstream.listener import ClientConnection
    from chaosproxy.proxy.downstream.request import RequestBody, RequestHead

log = logging.getLogger("chaosproxy.proxy")

SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
# A body this large at most is read whole before switching; past it, the request is refused.
MAX_UPGRADE_BODY = BODY_HIGH_WATER
# base64url without padding: a SETTINGS payload is 6 bytes a setting, 8 characters.
_TOKEN68 = re.compile(rb"(?:[A-Za-z0-9_-]{8})*")


def _tokens(head: RequestHead, name: bytes) -> set[bytes]:
    """The comma-separated tokens of every `name` header, lower-case."""
    out: set[bytes] = set()
    for k, v in head.raw:
        if k.lower() == name:
            out.update(t.strip().lower() for t in v.split(b","))
    return out


def valid_settings(value: bytes) -> bool:
    """Whether an `HTTP2-Settings` value is a SETTINGS payload we accept; not when it is
    not base64url (no padding: a payload of whole settings never needs it), not whole 6-byte
    settings, or a value the RFC forbids (ENABLE_PUSH not 0/1, a window over 2^31-1, a frame
    size outside 16 KiB..16 MiB-1), as h2 itself would refuse it in a SETTINGS frame."""
    v = value.strip()
    if _TOKEN68.fullmatch(v) is None:
        return False
    try:
        base64.urlsafe_b64decode(v)
        H2Connection(H2Configuration(client_side=False)).initiate_upgrade_connection(v)
    except (binascii.Error, ValueError, H2Error, HyperframeError):
        return False
    return True


def h2c_settings(head: RequestHead, tls: bool) -> bytes | None:
    """The `HTTP2-Settings` value of a request we upgrade to h2c, or None to answer it over
    HTTP/1.1 (why, in the module's docstring)."""
    if tls or head.version != "1.1" or head.method == "CONNECT":
        return None
    if not {b"upgrade", b"http2-settings"} <= _tokens(head, b"connection"):
        return None
    values = [v for k, v in head.raw if k.lower() == b"http2-settings"]
    if len(values) != 1 or not valid_settings(values[0]):
        return None
    t = head.target
    if not t.startswith("/"):
        scheme, sep, _ = t.partition("://")
        if not (sep and scheme.lower() == "http"):
            return None
    return values[0].strip()


def stream_headers(head: RequestHead) -> H2Headers:
    """The upgrading request as stream 1's header list: pseudo-headers from the request line
    and `Host`, the rest lower-case minus what HTTP/2 forbids (RFC 9113 §8.2.2)."""
    target = head.target
    authority = b""
    if not target.startswith("/"):
        _, _, rest = target.partition("://")
        authority = rest.split("/", 1)[0].split("?", 1)[0].encode("latin-1")
        target = origin_form(rest)
    regular: H2Headers = []
    for k, v in end_to_end_h2((k.lower(), v) for k, v in head.raw):
        if k == b"host":
            authority = authority or v.strip()
        else:
            regular.append((k, v))
    pseudo: H2Headers = [(b":method", head.method.encode("latin-1")), (b":scheme", b"http")]
    if authority:
        pseudo.append((b":authority", authority))
    pseudo.append((b":path", target.encode("latin-1")))
    return pseudo + regular


class UpgradedConnection(H2ServerConnection):
    """An HTTP/2 connection that began as HTTP/1.1: its preface settings are the ones our
    101 implicitly acknowledged (`HTTP2-Settings`), and stream 1 exists from the start. Stream
    1 is answered once the client's preface arrived: the client then read our 101 on its own
    (curl fails an upgrade when more than 32 KiB of HTTP/2 follow the 101 in one read), and
    its SETTINGS (windows, frame size) are in force."""

    def __init__(
        self,
        handler: StreamHandler,
        conn: ClientConnection,
        settings: bytes,
        first: tuple[H2Headers, bytes],
    ) -> None:
        super().__init__(handler, conn.client_ip, conn.limits.idle_timeout, conn)
        self.upgrade_settings = settings
        self._first: tuple[H2Headers, bytes] | None = first  # stream 1's head and body

    def initiate(self) -> None:
        self.h2.initiate_upgrade_connection(self.upgrade_settings)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        first, tr = self._first, self.transport
        if first is not None and tr is not None and not tr.is_closing():
            self._first = None
            self.open_stream(1, first[0], True, first[1])


def _answer_over_http1(conn: ClientConnection, head: RequestHead) -> bool:
    """Serve a request without a body as if it had not asked to upgrade; the connection closes
    after it (the parser stopped at the upgrade: what follows is not read as HTTP/1.1)."""
    head.upgrade = False
    head.keep_alive = False
    if conn.tunnel is not None:
        conn.tunnel = None
        conn.listener.tunnels -= 1
    return False


def _body_length(head: RequestHead) -> int | None:
    """The request body's Content-Length (0 without one); None when chunked."""
    n = 0
    for k, v in head.raw:
        low = k.lower()
        if low == b"transfer-encoding":
            return None
        if low == b"content-length":
            try:
                n = int(v.strip())
            except ValueError:
                return None
    return n


async def _read_body(conn: ClientConnection, n: int) -> tuple[bytes, bytes]:
    """The `n` bytes of body after the head (the parser left them unread, as the new
    protocol's), and what came after them. Raises TimeoutError after the listener's body
    timeout of silence, ConnectionResetError when the client went away."""
    tunnel = conn.tunnel
    got = bytearray()
    while len(got) < n:
        if tunnel is None:
            raise ConnectionResetError("the client closed the connection")
        async with asyncio.timeout(conn.limits.body_timeout):
            chunk = await anext(tunnel, None)
        if chunk is None:
            raise ConnectionResetError("the client closed before its body ended")
        got += chunk
    return bytes(got[:n]), bytes(got[n:])


async def take_over(
    handler: StreamHandler, conn: ClientConnection, head: RequestHead, body: RequestBody | None
) -> bool:
    """An upgrade request in its turn: True when the connection becomes HTTP/2 (the listener
    stops serving it), False when the listener answers it (a WebSocket upgrade is relayed as
    before; an h2c request we do not upgrade is answered over HTTP/1.1, or refused (400) when
    it has a body, which the parser left unread)."""
    protocols = _tokens(head, b"upgrade")
    if b"h2c" not in protocols:
        return False
    tr = conn.transport
    settings = h2c_settings(head, tr is not None and tr.get_extra_info("ssl_object") is not None)
    length = _body_length(head) if body is not None else 0
    if settings is None or length is None or length > MAX_UPGRADE_BODY:
        if body is not None or len(protocols) > 1:  # refused (400), or relayed (`websocket`)
            return False
        return _answer_over_http1(conn, head)
    load = conn.core.load
    data = early = b""
    if length:
        try:
            if head.expect_continue:
                conn.send_continue()
            data, early = await _read_body(conn, length)
        except TimeoutError:
            t = conn.limits.body_timeout or 0.0
            details = f"no request body bytes arrived for {t:g}s"
            conn.write(error_response(408, details, conn.core.ids.next()))
            conn.close()
            load.finished()
            return True
        except ConnectionError:
            conn.close()
            load.finished()
            return True
        except asyncio.CancelledError:  # the connection was lost meanwhile
            load.finished()
            raise
    load.finished()  # counted again as stream 1
    # The listener's task ends first (it resets the connection's busy state), then HTTP/2.
    conn.loop.call_soon(_switch, handler, conn, head, settings, data, early)
    return True


def _switch(
    handler: StreamHandler,
    conn: ClientConnection,
    head: RequestHead,
    settings: bytes,
    body: bytes,
    early: bytes,
) -> None:
    """101, then HTTP/2 on the same transport: our preface, then the bytes the client sent
    after its request (its preface, which opens stream 1), in order."""
    tr = conn.transport
    tunnel = conn.tunnel
    if tunnel is None or conn.closed or tr is None or tr.is_closing():
        return  # the client went away meanwhile (connection_lost does the accounting)
    conn.tunnel = None
    conn.listener.tunnels -= 1
    early += tunnel.take()
    tr.write(SWITCHING)
    h2conn = UpgradedConnection(handler, conn, settings, (stream_headers(head), body))
    tr.set_protocol(h2conn)
    h2conn.connection_made(tr)
    conn.resume_body()
    if early:
        h2conn.data_received(early)
    log.debug("upgraded a connection from %s to h2c", conn.client_ip)
