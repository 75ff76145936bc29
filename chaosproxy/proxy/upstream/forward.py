"""What the upstream gets of a client's request: its header lines, and the call.

A `Forwarder` holds the upstream and the header rules resolved once at startup (which headers
never go upstream, `X-Forwarded-*`, the scheme the client spoke). Streaming the reply back
through the faults' hooks is the downstream pipeline's job (`downstream/pipeline.py`)."""

from __future__ import annotations

from chaosproxy.proxy.upstream.interface import OutgoingBody, Tunnel, Upstream, UpstreamResponse
from chaosproxy.proxy.wire.headers import HOP_BY_HOP, RawHeaders, connection_listed, end_to_end

_FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})
# What the request lines depend on, read in the filter's one pass.
_WATCH = frozenset({b"host", b"x-forwarded-for", b"x-request-id", b"content-length", b"connection"})


class Forwarder:
    """One upstream and the rules for the request headers it gets."""

    def __init__(
        self,
        upstream: Upstream,
        drop: frozenset[str] = frozenset(),
        forwarded_headers: bool = True,
        rewrite_host: bool = False,
        scheme: str = "http",
    ) -> None:
        self.upstream = upstream
        self.forwarded_headers = forwarded_headers
        self.scheme = scheme
        self._scheme = scheme.encode("latin-1")
        skip = HOP_BY_HOP | frozenset(n.lower() for n in drop)
        if forwarded_headers:
            skip |= _FORWARDED
        if rewrite_host:
            skip |= {"host"}
        # Computed once: the per-request header filter is one set lookup per header.
        self.skip = frozenset(n.encode("latin-1") for n in skip)
        self._host_kept = b"host" not in self.skip

    def lines(self, raw: RawHeaders, client_ip: str, request_id: str) -> tuple[bytes, bool, bool]:
        """The request header lines the upstream gets: the client's, in order and spelling,
        minus hop-by-hop ones (and those `Connection` lists) and the never-forwarded ones, plus
        X-Forwarded-* and the request id; and whether they carry Host and Content-Length.
        Never decodes the client's headers."""
        kept, kept_lines, seen = end_to_end(raw, self.skip, _WATCH)
        prior = host = None
        has_id = has_length = listing = False
        for name, value in seen:
            if name == b"host":
                if host is None:
                    host = value
            elif name == b"x-forwarded-for":
                prior = value if prior is None else prior + b", " + value
            elif name == b"x-request-id":
                has_id = True
            elif name == b"content-length":
                has_length = True
            elif connection_listed(value):
                listing = True
        has_host = host is not None and self._host_kept
        if has_host and listing:  # `Connection` may have named Host
            has_host = any(len(k) == 4 and k.lower() == b"host" for k, _ in kept)
        lines = [kept_lines]
        if self.forwarded_headers:
            ip = client_ip.encode("latin-1")
            lines += (b"X-Forwarded-For: ", prior + b", " + ip if prior else ip, b"\r\n")
            lines += (b"X-Forwarded-Proto: ", self._scheme, b"\r\n")
            if host:
                lines += (b"X-Forwarded-Host: ", host, b"\r\n")
        if not has_id:
            lines += (b"X-Request-Id: ", request_id.encode("latin-1"), b"\r\n")
        return b"".join(lines), has_host, has_length

    async def request(
        self,
        method: str,
        target: str,
        raw: RawHeaders,
        client_ip: str,
        request_id: str,
        body: OutgoingBody | None,
    ) -> UpstreamResponse:
        """Send one request upstream; its response once the head arrived."""
        lines, has_host, has_length = self.lines(raw, client_ip, request_id)
        return await self.upstream.request(method, target, lines, has_host, has_length, body)

    async def upgrade(
        self,
        method: str,
        target: str,
        raw: RawHeaders,
        client_ip: str,
        request_id: str,
        protocol: str,
    ) -> Tunnel:
        """Send an upgrade request upstream on a connection of its own (`Upstream.upgrade`)."""
        lines, has_host, _ = self.lines(raw, client_ip, request_id)
        return await self.upstream.upgrade(method, target, lines, has_host, protocol)
