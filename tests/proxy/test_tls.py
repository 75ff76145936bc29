"""TLS both ways, with certificates made on the fly: terminate on the listener, verify upstream."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import StartProxy


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture
def cert_files(tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert) -> dict[str, str]:
    """The CA, the server's chain and key as PEM files, as a user would pass them."""
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server_cert.private_key_pem.write_to_path(str(files["key"]))
    for i, blob in enumerate(server_cert.cert_chain_pems):
        blob.write_to_path(str(files["cert"]), append=i > 0)
    return {k: str(v) for k, v in files.items()}


def hello_app() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(
            {"scheme": request.scheme, "xfp": request.headers.get("X-Forwarded-Proto")}
        )

    app = web.Application()
    app.router.add_get("/hello", handler)
    return app


@pytest.fixture
async def https_upstream(server_cert: trustme.LeafCert) -> AsyncIterator[str]:
    """An https upstream whose certificate only the test CA vouches for."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(ctx)
    server = TestServer(hello_app(), host="127.0.0.1", scheme="https")
    await server.start_server(ssl=ctx)
    yield f"https://127.0.0.1:{server.port}"
    await server.close()


def client_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


async def test_listener_terminates_tls_with_given_cert_and_key(
    start_upstream: Callable[[web.Application], object],
    start_proxy: StartProxy,
    cert_files: dict[str, str],
    ca: trustme.CA,
) -> None:
    up = await start_upstream(hello_app())  # type: ignore[misc]
    rt = await start_proxy(up, tls_cert=cert_files["cert"], tls_key=cert_files["key"])
    assert rt.proxy_url.startswith("https://")
    async with (
        aiohttp.ClientSession() as s,
        s.get(rt.proxy_url + "/hello", ssl=client_ssl(ca)) as r,
    ):
        seen = await r.json()
    assert r.status == 200
    assert seen["xfp"] == "https"


async def test_https_upstream_with_untrusted_ca_gives_502_json(
    https_upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(https_upstream)
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/hello") as r:
        body = await r.read()
    assert r.status == 502
    err = json.loads(body)["error"]
    assert err["requestId"] == r.headers["X-Request-Id"]
    assert "certificate" in err["details"].lower()


async def test_upstream_ca_file_makes_the_https_upstream_trusted(
    https_upstream: str, start_proxy: StartProxy, cert_files: dict[str, str]
) -> None:
    rt = await start_proxy(https_upstream, upstream_ca=cert_files["ca"])
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/hello") as r:
        seen = await r.json()
    assert r.status == 200
    assert seen["scheme"] == "https"


async def test_upstream_insecure_skips_verification(
    https_upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(https_upstream, upstream_insecure=True)
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/hello") as r:
        await r.read()
    assert r.status == 200
