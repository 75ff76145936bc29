"""HTTP/2 conformance of the proxy's listener, checked two ways (h2spec itself needs a Go
toolchain: docs/http2.md#conformance).

(a) Real tools against the listener: nghttp (prior knowledge, `Upgrade: h2c`, TLS with ALPN)
and h2load with many streams over several connections: every request succeeds and the bytes
are the upstream's.

(b) Hand-built frames in the spirit of h2spec's generic and RFC 9113 sections, each on its own
connection over a real socket: what the listener answers (GOAWAY and its error code, RST_STREAM
and its code, a PING's ACK, a closed connection) is what RFC 9113 requires, or one of the
answers it allows (a stream error may be treated as a connection error, §5.4.1). After every
case a request on a fresh connection is answered: one peer's errors never stop the proxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import hpack
import pytest
from aiohttp import web
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from chaosproxy.process.runtime import Runtime
from chaosproxy.proxy.h2.connection import MAX_FRAME
from tests.conftest import StartProxy
from tests.proxy.h2.test_curl import nghttpd  # noqa: F401 (a fixture)
from tests.proxy.h2.test_tls_alpn import cert_files

StartUpstream = Callable[[web.Application], Awaitable[str]]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# RFC 9113 §7 error codes
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
COMPRESSION_ERROR = 0x9


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (make tools)")


# ------------------------------------------------------------------ frames by hand


def raw_frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    """A frame exactly as given, whatever the rules: for what hyperframe would not build."""
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", sid)
        + payload
    )


def block(fields: list[tuple[bytes, bytes]]) -> bytes:
    """A header block (a fresh HPACK context per connection: every case opens its own)."""
    return hpack.Encoder().encode(fields)


GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"proxy"), (b":path", b"/ok")]
POST = [(b":method", b"POST"), *GET[1:]]


def headers(sid: int, fields: list[tuple[bytes, bytes]], end_stream: bool = True) -> bytes:
    flags = ["END_HEADERS", *(["END_STREAM"] if end_stream else [])]
    return HeadersFrame(sid, block(fields), flags=flags).serialize()


def settings(**values: int) -> bytes:
    codes = {"ENABLE_PUSH": 0x2, "INITIAL_WINDOW_SIZE": 0x4, "MAX_FRAME_SIZE": 0x5}
    payload = b"".join(struct.pack(">HI", codes[k], v) for k, v in values.items())
    return raw_frame(0x4, 0, 0, payload)


# ------------------------------------------------------------------ a peer


@dataclass(frozen=True)
class Outcome:
    """What the listener did: `goaway` (its error code), `rst` (stream, code), `ping-ack`
    (the opaque data echoed), `answered` (stream, status), or `closed` (no GOAWAY)."""

    kind: str
    code: int | None = None
    stream: int | None = None
    data: bytes = b""


class Peer:
    """A client at the frame level: sends bytes as given, reads frames as the proxy sent them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = hpack.Decoder()
        self.frames: list[Frame] = []

    @classmethod
    async def open(
        cls, port: int, preface: bytes | None = PREFACE + SettingsFrame(0).serialize()
    ) -> Peer:
        """Connected; with the client preface sent and the proxy's SETTINGS acknowledged (so
        its own settings, such as its larger frame size, are in force)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        peer = cls(reader, writer)
        if preface is not None:
            writer.write(preface)
            while True:
                f = await peer.frame()
                assert f is not None, "closed during the handshake"
                if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
                    writer.write(SettingsFrame(0, flags=["ACK"]).serialize())
                    break
        return peer

    def send(self, *chunks: bytes) -> None:
        self.writer.write(b"".join(chunks))

    async def frame(self) -> Frame | None:
        try:
            head = await self.reader.readexactly(9)
            f, length = Frame.parse_frame_header(memoryview(head))
            f.parse_body(memoryview(await self.reader.readexactly(length)))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        self.frames.append(f)
        return f

    async def outcome(self) -> Outcome:
        """Read until the listener said something decisive."""
        while True:
            f = await self.frame()
            if f is None:
                return Outcome("closed")
            if isinstance(f, GoAwayFrame):
                return Outcome("goaway", f.error_code)
            if isinstance(f, RstStreamFrame):
                return Outcome("rst", f.error_code, f.stream_id)
            if isinstance(f, PingFrame) and "ACK" in f.flags:
                return Outcome("ping-ack", data=bytes(f.opaque_data))
            if isinstance(f, HeadersFrame):
                fields = dict(self.decoder.decode(bytes(f.data), raw=True))
                if b":status" in fields:
                    return Outcome("answered", int(fields[b":status"]), f.stream_id)
            if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
                self.send(SettingsFrame(0, flags=["ACK"]).serialize())

    async def closed(self) -> bool:
        """After a GOAWAY: the listener closes the connection."""
        while (await self.frame()) is not None:
            pass
        return True

    def close(self) -> None:
        self.writer.close()


# ------------------------------------------------------------------ the cases


@dataclass(frozen=True)
class Case:
    name: str  # what h2spec calls it, more or less
    frames: Callable[[], bytes]
    want: Outcome  # what the listener answers: what RFC 9113 requires, or an answer it allows
    ref: str  # where
    note: str = ""  # when `want` is not the RFC's first answer: why (docs/http2.md#conformance)


BIG = MAX_FRAME + 1
CONN = "a stream error treated as a connection error (allowed, §5.4.1)"


def goaway(code: int) -> Outcome:
    return Outcome("goaway", code)


def rst(code: int, sid: int = 1) -> Outcome:
    return Outcome("rst", code, sid)


def ping_ack(data: bytes) -> Outcome:
    return Outcome("ping-ack", data=data)


def opened() -> bytes:
    """Stream 1 open (a POST whose body has not ended)."""
    return headers(1, POST, end_stream=False)


CASES = [
    # ---- frames and the connection (RFC 9113 §4, §5)
    Case("DATA on stream 0", lambda: raw_frame(0x0, 0, 0, b"x"), goaway(PROTOCOL_ERROR), "§6.1"),
    Case("HEADERS on an even stream id", lambda: headers(2, GET), goaway(PROTOCOL_ERROR), "§5.1.1"),
    Case(
        "DATA larger than SETTINGS_MAX_FRAME_SIZE",
        lambda: opened() + raw_frame(0x0, 0, 1, b"x" * BIG),
        goaway(FRAME_SIZE_ERROR),
        "§4.2",
    ),
    Case(
        "HEADERS larger than SETTINGS_MAX_FRAME_SIZE",
        lambda: raw_frame(0x1, 0x5, 1, block(GET) + b"\x00" * BIG),
        goaway(FRAME_SIZE_ERROR),
        "§4.2",
    ),
    Case(
        "unknown frame type is ignored",
        lambda: raw_frame(0xEE, 0, 0, b"what") + PingFrame(0, b"12345678").serialize(),
        ping_ack(b"12345678"),
        "§5.5",
    ),
    Case(
        "DATA on an idle stream", lambda: raw_frame(0x0, 0, 1, b"x"), goaway(PROTOCOL_ERROR), "§5.1"
    ),
    Case(
        "RST_STREAM on an idle stream",
        lambda: RstStreamFrame(1, 8).serialize(),
        goaway(PROTOCOL_ERROR),
        "§6.4",
    ),
    Case(
        "RST_STREAM on stream 0",
        lambda: raw_frame(0x3, 0, 0, struct.pack(">I", 8)),
        goaway(PROTOCOL_ERROR),
        "§6.4",
    ),
    Case(
        "RST_STREAM of length 3",
        lambda: opened() + raw_frame(0x3, 0, 1, b"\x00\x00\x08"),
        goaway(FRAME_SIZE_ERROR),
        "§6.4",
    ),
    Case(
        "PRIORITY of length 4",
        lambda: raw_frame(0x2, 0, 1, b"\x00\x00\x00\x03"),
        goaway(FRAME_SIZE_ERROR),
        "§6.3",
        CONN,
    ),
    Case(
        "a stream depending on itself",
        lambda: PriorityFrame(1, depends_on=1).serialize(),
        goaway(PROTOCOL_ERROR),
        "§5.3.1",
        CONN,
    ),
    Case(
        "a new stream id lower than one opened",
        lambda: headers(5, GET) + headers(3, GET),
        goaway(PROTOCOL_ERROR),
        "§5.1.1",
    ),
    # ---- SETTINGS (§6.5)
    Case(
        "SETTINGS_ENABLE_PUSH = 2",
        lambda: settings(ENABLE_PUSH=2),
        goaway(PROTOCOL_ERROR),
        "§6.5.2",
    ),
    Case(
        "SETTINGS_INITIAL_WINDOW_SIZE = 2^31",
        lambda: settings(INITIAL_WINDOW_SIZE=2**31),
        goaway(FLOW_CONTROL_ERROR),
        "§6.5.2",
    ),
    Case(
        "SETTINGS_MAX_FRAME_SIZE = 16383",
        lambda: settings(MAX_FRAME_SIZE=16383),
        goaway(PROTOCOL_ERROR),
        "§6.5.2",
    ),
    Case(
        "SETTINGS ACK with a payload",
        lambda: raw_frame(0x4, 0x1, 0, b"\x00\x03\x00\x00\x00\x64"),
        goaway(PROTOCOL_ERROR),
        "§6.5",
        "DEVIATION: the RFC's code is FRAME_SIZE_ERROR; h2 (hyperframe) reports this frame as "
        "invalid data, PROTOCOL_ERROR. The connection ends as required; only the code differs",
    ),
    Case(
        "SETTINGS of length 4",
        lambda: raw_frame(0x4, 0, 0, b"\x00\x03\x00\x00"),
        goaway(FRAME_SIZE_ERROR),
        "§6.5",
    ),
    Case("SETTINGS on a stream", lambda: raw_frame(0x4, 0, 1, b""), goaway(PROTOCOL_ERROR), "§6.5"),
    Case(
        "unknown SETTINGS id is ignored",
        lambda: (
            raw_frame(0x4, 0, 0, b"\x00\xee\x00\x00\x00\x01")
            + PingFrame(0, b"set+ping").serialize()
        ),
        ping_ack(b"set+ping"),
        "§6.5.2",
    ),
    # ---- PING (§6.7)
    Case(
        "PING is answered with its data",
        lambda: PingFrame(0, b"abcdefgh").serialize(),
        ping_ack(b"abcdefgh"),
        "§6.7",
    ),
    Case(
        "a PING ACK is not answered",
        lambda: (
            PingFrame(0, b"unasked!", flags=["ACK"]).serialize()
            + PingFrame(0, b"asked...").serialize()
        ),
        ping_ack(b"asked..."),
        "§6.7",
    ),
    Case(
        "PING of length 6",
        lambda: raw_frame(0x6, 0, 0, b"abcdef"),
        goaway(FRAME_SIZE_ERROR),
        "§6.7",
    ),
    Case(
        "PING on a stream",
        lambda: raw_frame(0x6, 0, 1, b"abcdefgh"),
        goaway(PROTOCOL_ERROR),
        "§6.7",
    ),
    # ---- WINDOW_UPDATE (§6.9)
    Case(
        "WINDOW_UPDATE of 0 on the connection",
        lambda: raw_frame(0x8, 0, 0, struct.pack(">I", 0)),
        goaway(PROTOCOL_ERROR),
        "§6.9",
    ),
    Case(
        "WINDOW_UPDATE of 0 on a stream",
        lambda: opened() + raw_frame(0x8, 0, 1, struct.pack(">I", 0)),
        goaway(PROTOCOL_ERROR),
        "§6.9",
        CONN,
    ),
    Case(
        "WINDOW_UPDATE of length 3",
        lambda: raw_frame(0x8, 0, 0, b"\x00\x00\x01"),
        goaway(FRAME_SIZE_ERROR),
        "§6.9",
    ),
    Case(
        "connection window past 2^31-1",
        lambda: WindowUpdateFrame(0, 2**31 - 1).serialize(),
        goaway(FLOW_CONTROL_ERROR),
        "§6.9.1",
    ),
    Case(
        "stream window past 2^31-1",
        lambda: opened() + WindowUpdateFrame(1, 2**31 - 1).serialize(),
        rst(FLOW_CONTROL_ERROR),
        "§6.9.1",
    ),
    # ---- CONTINUATION (§6.10), HPACK (§4.3)
    Case(
        "CONTINUATION without HEADERS",
        lambda: ContinuationFrame(1, block(GET), flags=["END_HEADERS"]).serialize(),
        goaway(PROTOCOL_ERROR),
        "§6.10",
    ),
    Case(
        "a frame between HEADERS and its CONTINUATION",
        lambda: (
            HeadersFrame(1, block(GET), flags=["END_STREAM"]).serialize()
            + PingFrame(0, b"12345678").serialize()
        ),
        goaway(PROTOCOL_ERROR),
        "§6.10",
    ),
    Case(
        "invalid HPACK (an index past both tables)",
        lambda: raw_frame(0x1, 0x5, 1, b"\xff\xff\xff\xff\x0f"),
        goaway(COMPRESSION_ERROR),
        "§4.3",
    ),
    # ---- malformed requests (§8.1-8.3): stream errors of type PROTOCOL_ERROR
    Case(
        "upper-case header name",
        lambda: headers(1, [*GET, (b"X-Upper", b"1")]),
        goaway(PROTOCOL_ERROR),
        "§8.2.1",
        CONN,
    ),
    Case(
        "connection-specific header field",
        lambda: headers(1, [*GET, (b"connection", b"keep-alive")]),
        goaway(PROTOCOL_ERROR),
        "§8.2.2",
        CONN,
    ),
    Case(
        "TE other than trailers",
        lambda: headers(1, [*GET, (b"te", b"gzip")]),
        goaway(PROTOCOL_ERROR),
        "§8.2.2",
        CONN,
    ),
    Case(
        "pseudo-header after a regular header",
        lambda: headers(1, [*GET[:3], (b"x-a", b"1"), GET[3]]),
        goaway(PROTOCOL_ERROR),
        "§8.3",
        CONN,
    ),
    Case("missing :method", lambda: headers(1, GET[1:]), goaway(PROTOCOL_ERROR), "§8.3.1", CONN),
    Case(
        "unknown pseudo-header",
        lambda: headers(1, [*GET, (b":foo", b"bar")]),
        goaway(PROTOCOL_ERROR),
        "§8.3",
        CONN,
    ),
    Case(
        "two :path",
        lambda: headers(1, [*GET, (b":path", b"/again")]),
        goaway(PROTOCOL_ERROR),
        "§8.3.1",
        CONN,
    ),
    Case(
        "empty :path",
        lambda: headers(1, [*GET[:3], (b":path", b"")]),
        goaway(PROTOCOL_ERROR),
        "§8.3.1",
        CONN,
    ),
    Case(
        "pseudo-header in trailers",
        lambda: opened() + headers(1, [(b":status", b"200")]),
        goaway(PROTOCOL_ERROR),
        "§8.1",
        CONN,
    ),
    Case(
        "content-length unlike the DATA's length",
        lambda: (
            headers(1, [*POST, (b"content-length", b"5")], end_stream=False)
            + DataFrame(1, b"abc", flags=["END_STREAM"]).serialize()
        ),
        goaway(PROTOCOL_ERROR),
        "§8.1.1",
        CONN,
    ),
    # ---- stream states (§5.1)
    Case(
        "DATA after END_STREAM",
        lambda: headers(1, GET) + DataFrame(1, b"late").serialize(),
        rst(STREAM_CLOSED),
        "§5.1",
    ),
    Case(
        "HEADERS after END_STREAM",
        lambda: headers(1, GET) + headers(1, GET),
        rst(STREAM_CLOSED),
        "§5.1",
    ),
]


@pytest.fixture
async def proxy(start_upstream: StartUpstream, start_proxy: StartProxy) -> Runtime:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    return await start_proxy(await start_upstream(app))


async def answered(rt: Runtime) -> bool:
    """A fresh connection gets its request answered (the proxy serves on)."""
    peer = await Peer.open(rt.proxy_port)
    peer.send(headers(1, GET))
    got = await peer.outcome()
    peer.close()
    return got == Outcome("answered", 200, 1)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_frame_level_case(proxy: Runtime, case: Case) -> None:
    peer = await Peer.open(proxy.proxy_port)
    peer.send(case.frames())
    got = await peer.outcome()
    assert got == case.want, f"{case.name} ({case.ref}): {got}"
    if got.kind == "goaway":
        assert await peer.closed()  # a connection error ends the connection
    peer.close()
    assert await answered(proxy)


async def test_a_bad_preface_closes_the_connection(proxy: Runtime) -> None:
    """§3.4: a connection error. `PRI * HTTP/2.0` then not the rest of the preface is no
    HTTP/2 client: the HTTP/1.1 listener refuses it (400) and closes."""
    peer = await Peer.open(proxy.proxy_port, preface=None)
    peer.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    assert (await peer.reader.read()).startswith(b"HTTP/1.1 400 ")
    peer.close()
    assert await answered(proxy)


async def test_a_preface_without_settings_is_a_connection_error(proxy: Runtime) -> None:
    """§3.4: the client preface must be followed by SETTINGS: a PING first is a
    PROTOCOL_ERROR, and is not answered."""
    peer = await Peer.open(proxy.proxy_port, preface=None)
    peer.send(PREFACE + PingFrame(0, b"12345678").serialize())
    assert await peer.outcome() == goaway(PROTOCOL_ERROR)
    assert await peer.closed()
    peer.close()
    assert await answered(proxy)


# ------------------------------------------------------------------ (a) real tools


async def run(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, (argv, err.decode(errors="replace"), out[-2000:])
    return out.decode("latin-1")


def h2load_summary(out: str) -> tuple[dict[str, int], int]:
    """h2load's request counts (total, done, succeeded, failed, errored, timeout) and the
    response DATA bytes ("traffic: ... 60B (60) data")."""
    line = out.split("requests:")[1].splitlines()[0]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (\w+)", line)}
    data = re.search(r"\((\d+)\) data", out)
    assert data is not None, out
    return counts, int(data[1])


@pytest.mark.parametrize("mode", ["prior-knowledge", "upgrade"])
@pytest.mark.parametrize("path", ["/hello.txt", "/big.bin"])
async def test_nghttp_gets_the_upstream_bytes(
    nghttpd: tuple[str, Path],  # noqa: F811
    start_proxy: StartProxy,
    mode: str,
    path: str,
) -> None:
    need("nghttp")
    url, root = nghttpd
    rt = await start_proxy(url, upstream_h2=True)
    flags = ["-u"] if mode == "upgrade" else []
    out = await run("nghttp", *flags, rt.proxy_url + path)
    want = (root / path[1:]).read_bytes()
    assert hashlib.sha256(out.encode("latin-1")).digest() == hashlib.sha256(want).digest()


async def test_nghttp_over_tls_with_alpn(
    nghttpd: tuple[str, Path],  # noqa: F811
    start_proxy: StartProxy,
    tmp_path: Path,
) -> None:
    need("nghttp")
    url, root = nghttpd
    _, files = cert_files(tmp_path)
    rt = await start_proxy(url, upstream_h2=True, tls_cert=files["cert"], tls_key=files["key"])
    log = await run("nghttp", "-v", "-n", f"{rt.proxy_url}/hello.txt")
    assert "negotiated protocol: h2" in log
    assert await run("nghttp", f"{rt.proxy_url}/big.bin") == (root / "big.bin").read_bytes().decode(
        "latin-1"
    )


@pytest.mark.parametrize(
    ("clients", "streams"),
    [pytest.param(4, 16, id="4-conns-16-streams"), pytest.param(1, 100, id="1-conn-100-streams")],
)
async def test_h2load_many_streams_no_errors_same_bytes(
    nghttpd: tuple[str, Path],  # noqa: F811
    start_proxy: StartProxy,
    clients: int,
    streams: int,
) -> None:
    need("h2load")
    url, root = nghttpd
    (root / "page.bin").write_bytes(os.urandom(20_000))
    rt = await start_proxy(url, upstream_h2=True)
    n = 400
    args = ["h2load", "-n", str(n), "-c", str(clients), "-m", str(streams)]
    direct = h2load_summary(await run(*args, f"{url}/page.bin"))
    proxied = h2load_summary(await run(*args, f"{rt.proxy_url}/page.bin"))
    assert proxied[0]["succeeded"] == direct[0]["succeeded"] == n
    assert proxied[0]["failed"] == proxied[0]["errored"] == proxied[0]["timeout"] == 0
    assert proxied[1] == direct[1] == n * 20_000


async def test_h2load_over_tls(
    nghttpd: tuple[str, Path],  # noqa: F811
    start_proxy: StartProxy,
    tmp_path: Path,
) -> None:
    need("h2load")
    url, root = nghttpd
    _, files = cert_files(tmp_path)
    rt = await start_proxy(url, upstream_h2=True, tls_cert=files["cert"], tls_key=files["key"])
    out = await run("h2load", "-n", "100", "-c", "2", "-m", "10", f"{rt.proxy_url}/hello.txt")
    counts, data = h2load_summary(out)
    assert "Application protocol: h2" in out
    assert counts["succeeded"] == 100 and counts["errored"] == 0
    assert data == 100 * len((root / "hello.txt").read_bytes())
