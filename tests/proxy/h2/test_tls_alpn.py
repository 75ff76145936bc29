"""HTTP/2 over TLS: a client that negotiates `h2` by ALPN gets HTTP/2 on the proxy's one port;
one that offers only HTTP/1.1 keeps HTTP/1.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import grpc.aio
import trustme
from aiohttp import web

from tests.conftest import StartProxy
from tests.proxy.h2.conftest import SERVICE, EchoService


def cert_files(tmp_path: Path) -> tuple[trustme.CA, dict[str, str]]:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    leaf.private_key_pem.write_to_path(str(files["key"]))
    for i, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(files["cert"]), append=i > 0)
    return ca, {k: str(v) for k, v in files.items()}


async def curl_version(*args: str) -> tuple[str, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "-o",
        "/dev/stderr",
        "-w",
        "%{http_version}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, body = await proc.communicate()
    assert proc.returncode == 0, body
    return out.decode(), body


async def test_alpn_h2_and_http11_on_one_tls_port(
    start_upstream: Callable[[web.Application], Awaitable[str]],
    start_proxy: StartProxy,
    tmp_path: Path,
) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"proto={request.headers.get('X-Forwarded-Proto')}")

    app = web.Application()
    app.router.add_get("/hello", hello)
    up = await start_upstream(app)
    _, files = cert_files(tmp_path)
    rt = await start_proxy(up, tls_cert=files["cert"], tls_key=files["key"])
    url = rt.proxy_url + "/hello"
    assert await curl_version("--cacert", files["ca"], "--http2", url) == ("2", b"proto=https")
    assert await curl_version("--cacert", files["ca"], "--http1.1", url) == ("1.1", b"proto=https")


async def test_grpc_over_tls(
    grpc_server: tuple[EchoService, str], start_proxy: StartProxy, tmp_path: Path
) -> None:
    _, url = grpc_server
    ca, files = cert_files(tmp_path)
    rt = await start_proxy(url, tls_cert=files["cert"], tls_key=files["key"])
    creds = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
    async with grpc.aio.secure_channel(
        f"localhost:{rt.proxy_port}", creds, options=[("grpc.enable_http_proxy", 0)]
    ) as ch:
        assert await ch.unary_unary(f"/{SERVICE}/Unary")(b"tls") == b"echo:tls"
