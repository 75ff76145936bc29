"""Fidelity fuzzing: random requests and responses through the proxy and directly, compared.

With no fault active the proxy is invisible: the upstream sees the same method, target, headers
(plus only the documented forwarding headers) and body; the client gets the same status, reason
phrase, headers in the same case and order (minus hop-by-hop headers, plus only `X-Request-Id`)
and body, byte for byte. Upstream and client are raw sockets, so nothing normalises the bytes.
`CHAOSPROXY_FUZZ_EXAMPLES` sets the number of examples (60; 400 when `CI` is set: the long form).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaosproxy.process.runtime import Runtime
from tests.conftest import StartProxy
from tests.proxy.rawhttp import raw_request

EXAMPLES = int(os.environ.get("CHAOSPROXY_FUZZ_EXAMPLES", "400" if os.environ.get("CI") else "60"))
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
}
ADDED_UPSTREAM = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"}
ADDED_CLIENT = {"x-request-id"}


@dataclass
class Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool

    def wire(self) -> bytes:
        head = [f"HTTP/1.1 {self.status} {self.reason}"]
        head += [f"{k}: {v}" for k, v in self.headers]
        if self.chunked:
            head.append("Transfer-Encoding: chunked")
            body = b""
            for i in range(0, len(self.body), 7919):
                part = self.body[i : i + 7919]
                body += f"{len(part):x}\r\n".encode() + part + b"\r\n"
            body += b"0\r\n\r\n"
        else:
            head.append(f"Content-Length: {len(self.body)}")
            body = self.body
        head.append("Connection: close")
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Seen:
    method: str = ""
    target: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class Upstream(asyncio.Protocol):
    """One request per connection: records what it saw, answers the reply the case asks for."""

    replies: dict[str, Reply]
    seen: dict[str, list[Seen]]

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.req = Seen()
        self.name = b""
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.req.target += url.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.req.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.req.body += body

    def on_message_complete(self) -> None:
        self.req.method = self.parser.get_method().decode()
        case = next((v for k, v in self.req.headers if k.lower() == "x-fuzz-case"), "")
        self.seen.setdefault(case, []).append(self.req)
        self.transport.write(self.replies[case].wire())
        self.transport.close()


@pytest.fixture
async def rig(start_proxy: StartProxy) -> AsyncIterator[tuple[str, Runtime, type[Upstream]]]:
    proto = type("CaseUpstream", (Upstream,), {"replies": {}, "seen": {}})
    loop = asyncio.get_running_loop()
    server = await loop.create_server(proto, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    rt = await start_proxy(url)
    yield url, rt, proto
    server.close()


TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
VALUE = "".join(chr(c) for c in range(0x21, 0x7F))
header_names = st.text(TOKEN, min_size=1, max_size=12).map(lambda s: "X-F" + s)
header_values = st.text(VALUE + " \t", min_size=0, max_size=60).map(str.strip)
headers = st.lists(st.tuples(header_names, header_values), max_size=8)
segments = st.sampled_from(
    ["a", "Z", "0", "-", "_", ".", "~", "%20", "%2F", "%25", "%C3%A9", ";", "=", "@", ":", "!",
     "$", "'", "(", ")", "*", "+", ",", "..", "%00", "%FF"]
)  # fmt: skip
paths = st.lists(st.lists(segments, min_size=1, max_size=4).map("".join), max_size=5).map(
    lambda parts: "/" + "/".join(parts)
)
queries = st.one_of(
    st.just(""),
    st.lists(st.tuples(segments, segments), min_size=1, max_size=4).map(
        lambda kv: "?" + "&".join(f"{k}={v}" for k, v in kv)
    ),
)


class Blob(bytes):
    """Bytes that print as their size and digest: a failing example stays readable."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes sha256={hashlib.sha256(self).hexdigest()[:12]}>"


@st.composite
def bodies(draw: Any) -> bytes:
    """Small arbitrary bytes most of the time; now and then up to a few MiB."""
    if draw(st.integers(0, 9)) == 0:
        n = draw(st.integers(64 * 1024, 3 * 1024 * 1024))
        return Blob(random.Random(n).randbytes(n))
    return Blob(draw(st.binary(max_size=4096)))


@st.composite
def replies(draw: Any) -> Reply:
    status, reason = draw(
        st.sampled_from(
            [
                (200, "OK"),
                (201, "Created"),
                (203, "Fine By Me"),
                (206, "Partial Content"),
                (301, "Moved Permanently"),
                (302, "found"),
                (400, "Bad Request"),
                (404, "Nope"),
                (418, "I'm a teapot"),
                (429, "Too Many Requests"),
                (500, "Internal Server Error"),
                (502, "Bad Gateway"),
                (503, "Service Unavailable"),
            ]
        )
    )
    body = draw(bodies())
    hs = draw(headers)
    if draw(st.booleans()):  # compressed: the proxy must pass it through untouched
        body = Blob(gzip.compress(body, mtime=0))
        hs = [*hs, ("Content-Encoding", "gzip")]
    return Reply(status, reason, hs, body, draw(st.booleans()))


@st.composite
def requests(draw: Any) -> tuple[str, str, list[tuple[str, str]], bytes, bool]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]))
    target = draw(paths) + draw(queries)
    body = draw(bodies()) if method in ("POST", "PUT", "PATCH") else b""
    return method, target, draw(headers), body, draw(st.booleans())


def request_bytes(
    method: str, target: str, hs: list[tuple[str, str]], body: bytes, chunked: bool, case: str
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: fuzz.test", f"X-Fuzz-Case: {case}"]
    lines += [f"{k}: {v}" for k, v in hs]
    payload = b""
    if body and chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    elif body:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def payload(res: Any) -> bytes:
    """The body as the application sees it: chunked framing removed (a proxy may re-chunk)."""
    te = (res.header("Transfer-Encoding") or "").lower()
    if "chunked" not in te:
        return bytes(res.body)
    out, rest = b"", bytes(res.body)
    while True:
        line, _, rest = rest.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return out
        out, rest = out + rest[:size], rest[size + 2 :]


def end_to_end(hs: list[tuple[str, str]], added: set[str]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in hs if k.lower() not in HOP_BY_HOP | added | {"content-length"}]


cases = iter(range(10**9))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(req=requests(), reply=replies())
async def test_through_the_proxy_is_the_same_as_direct(
    rig: tuple[str, Runtime, type[Upstream]],
    req: tuple[str, str, list[tuple[str, str]], bytes, bool],
    reply: Reply,
) -> None:
    upstream, rt, proto = rig
    case = str(next(cases))
    proto.replies[case] = reply
    method, target, hs, body, chunked = req
    wire = request_bytes(method, target, hs, body, chunked, case)
    direct = await raw_request(upstream, wire, timeout=60)
    proxied = await raw_request(rt.proxy_url, wire, timeout=60)
    # What the client got: the same status, headers (order and case) and body.
    assert proxied.status == direct.status
    assert end_to_end(proxied.headers, ADDED_CLIENT) == end_to_end(direct.headers, set())
    assert proxied.header("X-Request-Id")
    assert (
        hashlib.sha256(payload(proxied)).hexdigest() == hashlib.sha256(payload(direct)).hexdigest()
    )
    # What the upstream saw: the same request, plus only the forwarding headers.
    first, second = proto.seen[case]
    assert (second.method, second.target) == (first.method, first.target)
    assert end_to_end(second.headers, ADDED_UPSTREAM) == end_to_end(first.headers, set())
    assert second.body == first.body
