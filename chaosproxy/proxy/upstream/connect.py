"""Opening connections to the upstream: the TLS context, a failed connect in words a client may
read, and the readiness probe."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl

from chaosproxy.common.errors import REFUSED_DETAILS, UpstreamError
from chaosproxy.proxy.upstream.interface import UpstreamConfig


def make_ssl_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    """Verify the upstream's certificate against `ca_file` (or the system's), or not at all."""
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=ca_file)


_ADDRESS = re.compile(r" ?\('[^']*', \d+(?:, \d+, \d+)?\)")


def connect_error(e: BaseException) -> UpstreamError:
    """A failed connect, in words a client may read: the cause, never the upstream's address
    (the same words for a real refusal as for an injected one)."""
    if isinstance(e, ConnectionRefusedError):
        return UpstreamError("refused", REFUSED_DETAILS)
    if isinstance(e, socket.gaierror):  # the name did not resolve: its own words, no address
        return UpstreamError("refused", f"cannot connect to the upstream: {e.strerror}")
    if isinstance(e, OSError) and e.errno and e.errno > 0 and not isinstance(e, ssl.SSLError):
        # asyncio's message repeats the address ("Connect call failed ('10.0.0.7', 8080)").
        return UpstreamError("refused", f"cannot connect to the upstream: {os.strerror(e.errno)}")
    return UpstreamError("refused", f"cannot connect to the upstream: {_ADDRESS.sub('', str(e))}")


async def tcp_reachable(config: UpstreamConfig) -> bool:
    """True when a TCP connection to the upstream can be opened (readiness)."""
    url = config.url
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        async with asyncio.timeout(config.connect_timeout):
            _, writer = await asyncio.open_connection(url.host, port)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True
