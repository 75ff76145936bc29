"""curl --http2-prior-knowledge through the proxy and straight to the upstream: the same
status, headers (the proxy adds `x-request-id`) and byte-identical bodies.

Upstreams: nghttpd (a real HTTP/2 server, Debian's nghttp2-server: `make tools`) behind
`--upstream-h2`; and an HTTP/1.1 upstream, which an HTTP/2 client's plain requests reach over
the HTTP/1.1 upstream client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import StartProxy

BIG = 3 * 1024 * 1024 + 17  # past every window on the way, and not a multiple of a frame


async def curl(*args: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers (lower-case names, in order) and body as curl received them."""
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "-D",
        "/dev/stderr",
        "-o",
        "-",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    body, head = await proc.communicate()
    assert proc.returncode == 0, head.decode(errors="replace")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [
        (k.strip().lower(), v.strip())
        for k, _, v in (line.partition(":") for line in lines[1:] if line)
    ]
    return status, headers, body


def comparable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What must be equal: all but the date (a second may tick between the two requests) and
    the request id the proxy adds."""
    return [(k, v) for k, v in headers if k not in ("date", "x-request-id")]


@pytest.fixture
async def nghttpd(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """nghttpd serving `tmp_path` over h2c on a free loopback port; its URL and the dir."""
    if shutil.which("nghttpd") is None:
        pytest.skip(
            "nghttpd is not installed (make tools, or ci/debian-tools.sh nghttpd=nghttp2-server)"
        )
    (tmp_path / "hello.txt").write_bytes(b"hello over h2\n")
    (tmp_path / "big.bin").write_bytes(os.urandom(BIG))
    for _ in range(5):  # the free port may be taken between our probe and nghttpd's bind
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            "nghttpd",
            "--no-tls",
            "-a",
            "127.0.0.1",
            "-d",
            str(tmp_path),
            str(port),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        while proc.returncode is None:  # until it accepts, or exits
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.05)
                continue
            w.close()
            break
        if proc.returncode is None:
            break
    else:
        pytest.fail("nghttpd did not start")
    yield f"http://127.0.0.1:{port}", tmp_path
    proc.terminate()
    await proc.wait()


@pytest.mark.parametrize("path", ["/hello.txt", "/big.bin", "/missing"])
async def test_h2_upstream_same_answer_through_the_proxy(
    nghttpd: tuple[str, Path], start_proxy: StartProxy, path: str
) -> None:
    url, _ = nghttpd
    rt = await start_proxy(url, upstream_h2=True)
    direct = await curl("--http2-prior-knowledge", url + path)
    proxied = await curl("--http2-prior-knowledge", rt.proxy_url + path)
    assert proxied[0] == direct[0]
    assert comparable(proxied[1]) == comparable(direct[1])
    assert hashlib.sha256(proxied[2]).digest() == hashlib.sha256(direct[2]).digest()
    assert any(k == "x-request-id" for k, _ in proxied[1])


async def test_parallel_streams_on_one_connection(
    nghttpd: tuple[str, Path], start_proxy: StartProxy
) -> None:
    """curl multiplexes several transfers on one HTTP/2 connection (--parallel)."""
    url, root = nghttpd
    rt = await start_proxy(url, upstream_h2=True)
    args = ["--http2-prior-knowledge", "--parallel", "--parallel-immediate"]
    outs = [root / f"out{i}" for i in range(4)]
    transfers = [a for out in outs for a in ("-o", str(out), f"{rt.proxy_url}/big.bin")]
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--noproxy",
        "*",
        *args,
        *transfers,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 0, err
    want = (root / "big.bin").read_bytes()
    assert all(out.read_bytes() == want for out in outs)


@pytest.fixture
async def h1_upstream(
    start_upstream: Callable[[web.Application], Awaitable[str]],
) -> str:
    blob = os.urandom(BIG)

    async def blob_handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=blob, headers={"X-Up": "yes", "Cache-Control": "no-store"})

    async def echo(request: web.Request) -> web.StreamResponse:
        data = await request.read()
        return web.Response(body=hashlib.sha256(data).hexdigest().encode())

    app = web.Application(client_max_size=8 * BIG)
    app.router.add_get("/blob", blob_handler)
    app.router.add_post("/echo", echo)
    return await start_upstream(app)


async def test_h1_upstream_same_body_as_direct(h1_upstream: str, start_proxy: StartProxy) -> None:
    rt = await start_proxy(h1_upstream)
    direct = await curl("--http1.1", h1_upstream + "/blob")
    proxied = await curl("--http2-prior-knowledge", rt.proxy_url + "/blob")
    assert proxied[0] == direct[0] == 200
    assert proxied[2] == direct[2]
    hop = {"connection", "keep-alive", "transfer-encoding"}
    assert comparable(proxied[1]) == [h for h in comparable(direct[1]) if h[0] not in hop]


async def test_h1_upstream_gets_the_whole_upload(
    h1_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    rt = await start_proxy(h1_upstream)
    data = os.urandom(BIG)
    (tmp_path / "up.bin").write_bytes(data)
    status, _, body = await curl(
        "--http2-prior-knowledge",
        "--data-binary",
        f"@{tmp_path / 'up.bin'}",
        rt.proxy_url + "/echo",
    )
    assert status == 200
    assert body == hashlib.sha256(data).hexdigest().encode()


@pytest.mark.parametrize("bits", [10, 14])
async def test_small_client_windows_are_honoured(
    nghttpd: tuple[str, Path], start_proxy: StartProxy, bits: int, tmp_path: Path
) -> None:
    """nghttp with 1 KiB / 16 KiB stream and connection windows, opened only as it reads: the
    proxy sends no more than the client allows (nghttp fails the connection otherwise) and the
    body arrives whole."""
    if shutil.which("nghttp") is None:
        pytest.skip("nghttp is not installed (ci/debian-tools.sh nghttp=nghttp2-client)")
    url, root = nghttpd
    rt = await start_proxy(url, upstream_h2=True)
    proc = await asyncio.create_subprocess_exec(
        "nghttp",
        "-w",
        str(bits),
        "-W",
        str(bits),
        f"{rt.proxy_url}/big.bin",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert out == (root / "big.bin").read_bytes()
