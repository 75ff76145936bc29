"""The Toxiproxy-compatible API under test, and the real Toxiproxy server to compare it with.

The real server is a measuring instrument, not a dependency: its binary comes from the shared
peers folder beside the repository (or CHAOSPROXY_TOXIPROXY_SERVER), and a test that needs it
skips, saying why, when it is absent. `peer/` holds a vendored client suite that only
`test_peer_suite.py` runs (in a network namespace of its own), never pytest's collection.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from chaosproxy.process.runtime import Runtime
from tests.conftest import StartProxy

collect_ignore = ["peer"]

REPO = Path(__file__).resolve().parents[2]
PEER_XZ = "peers/toxiproxy-server-2.12.0.xz"


def toxiproxy_archive() -> Path | None:
    """The Toxiproxy 2.12.0 server: CHAOSPROXY_TOXIPROXY_SERVER (a binary), else shared/
    beside the repository (the xz archive)."""
    given = os.environ.get("CHAOSPROXY_TOXIPROXY_SERVER")
    if given:
        return Path(given) if Path(given).is_file() else None
    for shared in (REPO.parent / "shared", REPO / "shared"):
        if (shared / PEER_XZ).is_file():
            return shared / PEER_XZ
    return None


@pytest.fixture(scope="session")
def toxiproxy_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = toxiproxy_archive()
    if archive is None:
        pytest.skip(
            f"the real Toxiproxy server is absent (../shared/{PEER_XZ} or "
            "CHAOSPROXY_TOXIPROXY_SERVER): nothing to compare against"
        )
    if archive.suffix != ".xz":
        return archive
    binary = tmp_path_factory.mktemp("toxiproxy") / "toxiproxy-server"
    with lzma.open(archive) as src, binary.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    binary.chmod(0o755)
    return binary


def _free_port() -> int:
    """Toxiproxy's -port takes no 0 it would report back: a port free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _answering(url: str, server: subprocess.Popen[bytes]) -> None:
    """Wait until the API answers /version (or the server died: fail with its exit code)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if server.poll() is not None:
                pytest.fail(f"toxiproxy-server exited with {server.returncode}")
            try:
                async with session.get(url + "/version") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await _pause()
    pytest.fail("toxiproxy-server did not answer /version")


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)  # polling another process's port: there is no event to wait on


@contextlib.asynccontextmanager
async def running_toxiproxy(binary: Path) -> AsyncIterator[str]:
    """A real Toxiproxy 2.12.0 on a loopback port; its base URL."""
    port = _free_port()
    server = subprocess.Popen(
        [str(binary), "-host", "127.0.0.1", "-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await _answering(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
async def real_toxiproxy(toxiproxy_binary: Path) -> AsyncIterator[str]:
    async with running_toxiproxy(toxiproxy_binary) as url:
        yield url


@pytest.fixture(params=["chaosproxy", "toxiproxy"])
async def either_api(request: pytest.FixtureRequest, start_proxy: StartProxy) -> AsyncIterator[str]:
    """Runs a test once against chaosproxy's API, once against the real Toxiproxy."""
    if request.param == "chaosproxy":
        runtime = await start_proxy("http://127.0.0.1:9", toxiproxy_api=("127.0.0.1", 0))
        yield f"http://127.0.0.1:{runtime.toxiproxy_port}"
        return
    async with running_toxiproxy(request.getfixturevalue("toxiproxy_binary")) as url:
        yield url


@pytest.fixture
async def chaos_runtime(start_proxy: StartProxy) -> Runtime:
    """A chaosproxy with its Toxiproxy API on a loopback port (the HTTP upstream unused)."""
    return await start_proxy("http://127.0.0.1:9", toxiproxy_api=("127.0.0.1", 0))


@pytest.fixture
def chaos_toxiproxy(chaos_runtime: Runtime) -> str:
    return f"http://127.0.0.1:{chaos_runtime.toxiproxy_port}"


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    """A real TCP echo service (a thread per connection): the upstream of the TCP proxies."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:  # the proxy reset the connection (reset_peer)
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()
    stop.set()
    listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in the thread
    listener.close()
    thread.join(10)
