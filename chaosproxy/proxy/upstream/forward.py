"""What the upstream gets of a client's request: its header lines, and the call.

A `Forwarder` holds the upstream and the header rules resolved once at startup (which headers
never go upstream, `X-Forwarded-*`, the scheme the client spoke). Streaming the reply back
through the faults' hooks is the downstream pipeline's job (`downstream/pipeline.py`)."""

from __future__ import annotations

from typing import Final

from chaosproxy.proxy.upstream.interface import OutgoingBody, Tunnel, Upstream, UpstreamResponse
from chaosproxy.proxy.wire.headers import (
    HOP_BY_HOP,
    NameKinds,
    RawHeaders,
    connection_listed,
    end_to_end,
)

_FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})
# What a header name means to the request lines (flags): never forwarded, or watched.
_SKIP: Final = 1
_HOST: Final = 2
_XFF: Final = 4
_ID: Final = 8
_LENGTH: Final = 16
_CONNECTION: Final = 32
_WATCH = {
    b"host": _HOST,
    b"x-forwarded-for": _XFF,
    b"x-request-id": _ID,
    b"content-length": _LENGTH,
    b"connection": _CONNECTION,
}


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
        self._proto_line = b"\r\nX-Forwarded-Proto: " + scheme.encode("latin-1") + b"\r\n"
        skip = HOP_BY_HOP | frozenset(n.lower() for n in drop)
        if forwarded_headers:
            skip |= _FORWARDED
        if rewrite_host:
            skip |= {"host"}
        # Computed once: the per-request header filter is one set lookup per header.
        self.skip = frozenset(n.encode("latin-1") for n in skip)
        self._host_kept = b"host" not in self.skip
        self._kind = {n: _SKIP for n in self.skip}
        for n, flag in _WATCH.items():
            self._kind[n] = self._kind.get(n, 0) | flag
        self._kinds = NameKinds(self._classify)

    def _classify(self, low: bytes) -> int:
        what = self._kind.get(low, 0)
        return _SKIP if not what and low.startswith(b"proxy-") else what

    def lines(self, raw: RawHeaders, client_ip: str, request_id: str) -> tuple[bytes, bool, bool]:
        """The request header lines the upstream gets: the client's, in order and spelling,
        minus hop-by-hop ones (and those `Connection` lists) and the never-forwarded ones, plus
        X-Forwarded-* and the request id; and whether they carry Host and Content-Length.
        Never decodes the client's headers. One pass (what `wire.headers.end_to_end` keeps,
        written for the request: it runs once per proxied request)."""
        lines: list[bytes] = []
        prior = host = None
        has_id = has_length = False
        listed: frozenset[bytes] | None = None
        kinds = self._kinds
        for k, v in raw:
            what = kinds.of(k)
            if what:
                if what & _HOST:
                    if host is None:
                        host = v
                elif what & _XFF:
                    prior = v if prior is None else prior + b", " + v
                elif what & _ID:
                    has_id = True
                elif what & _LENGTH:
                    has_length = True
                elif what & _CONNECTION:
                    extra = connection_listed(v)
                    if extra:
                        listed = extra if listed is None else listed | extra
                if what & _SKIP:
                    continue
            # Four appends, not `+= (k, ...)`: compiled, a tuple per header is most of the cost.
            lines.append(k)
            lines.append(b": ")
            lines.append(v)
            lines.append(b"\r\n")
        has_host = host is not None and self._host_kept
        if listed:  # `Connection` named more hop-by-hop headers (it may have named Host)
            kept, kept_lines, _ = end_to_end(raw, self.skip)
            lines = [kept_lines]
            if has_host:
                has_host = any(len(k) == 4 and k.lower() == b"host" for k, _ in kept)
        if self.forwarded_headers:
            ip = client_ip.encode("latin-1")
            lines.append(b"X-Forwarded-For: ")
            lines.append(prior + b", " + ip if prior else ip)
            lines.append(self._proto_line)  # (the line's end, then the scheme's whole line)
            if host:
                lines.append(b"X-Forwarded-Host: ")
                lines.append(host)
                lines.append(b"\r\n")
        if not has_id:
            lines.append(b"X-Request-Id: ")
            lines.append(request_id.encode("latin-1"))
            lines.append(b"\r\n")
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
