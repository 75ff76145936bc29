"""Bodies stream through in both directions: memory stays flat however large the body is.

The proxy runs as the real CLI in a subprocess so its resident memory can be sampled alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

StartUpstream = Callable[[web.Application], Awaitable[str]]

MiB = 1024 * 1024
CHUNK = bytes(range(256)) * 256  # 64 KiB
# Growth allowed over the idle proxy's RSS: far below any body size tested.
FLAT = 48 * MiB
NO_LIMIT = aiohttp.ClientTimeout(total=None)


def streaming_app() -> web.Application:
    """`GET /download?mib=N` streams N MiB; `POST /upload` hashes without keeping the body."""

    async def download(request: web.Request) -> web.StreamResponse:
        n = int(request.query["mib"]) * MiB // len(CHUNK)
        resp = web.StreamResponse(headers={"Content-Length": str(n * len(CHUNK))})
        await resp.prepare(request)
        for _ in range(n):
            await resp.write(CHUNK)
        await resp.write_eof()
        return resp

    async def upload(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        return web.json_response({"bytes": size, "sha256": digest.hexdigest()})

    app = web.Application(client_max_size=0)
    app.router.add_get("/download", download)
    app.router.add_post("/upload", upload)
    return app


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
    assert m
    return int(m.group(1)) * 1024


class RssSampler:
    """Samples a process's RSS in the background and keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = rss(pid)
        self.peak = self.baseline
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss(self.pid))
            await asyncio.sleep(0.01)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, rss(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@pytest.fixture
async def proxy_process(
    start_upstream: StartUpstream,
) -> AsyncIterator[tuple[str, int]]:
    """A `chaosproxy run` subprocess in front of the streaming app: (proxy URL, pid)."""
    up = await start_upstream(streaming_app())
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chaosproxy", "run", "--upstream", up,
        "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ},
    )  # fmt: skip
    assert proc.stderr is not None
    url = ""
    async with asyncio.timeout(20):
        while not url:
            line = (await proc.stderr.readline()).decode()
            assert line, "proxy exited early"
            m = re.search(r"proxying (\S+) ->", line)
            url = m.group(1) if m else ""
    # Warm up so the baseline includes the pool, parsers and buffers of one exchange.
    async with aiohttp.ClientSession() as s, s.get(url + "/download?mib=1") as r:
        await r.read()
    yield url, proc.pid
    proc.terminate()
    await proc.wait()


async def download_through(url: str, pid: int, mib: int) -> tuple[int, int]:
    """Downloads `mib` MiB, reading it in chunks; returns (bytes received, RSS growth)."""
    size = 0
    with RssSampler(pid) as sampler:
        async with (
            aiohttp.ClientSession(timeout=NO_LIMIT) as s,
            s.get(f"{url}/download?mib={mib}") as r,
        ):
            async for chunk in r.content.iter_chunked(256 * 1024):
                size += len(chunk)
    return size, sampler.growth


async def upload_through(url: str, pid: int, mib: int) -> tuple[dict[str, object], int, str]:
    """Uploads `mib` MiB generated on the fly; returns (upstream's view, RSS growth, sha256)."""
    digest = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        for _ in range(mib * MiB // len(CHUNK)):
            digest.update(CHUNK)
            yield CHUNK

    with RssSampler(pid) as sampler:
        async with (
            aiohttp.ClientSession(timeout=NO_LIMIT) as s,
            s.post(f"{url}/upload", data=body()) as r,
        ):
            seen = await r.json()
    return seen, sampler.growth, digest.hexdigest()


async def test_256_mib_download_streams_with_flat_memory(proxy_process: tuple[str, int]) -> None:
    size, growth = await download_through(*proxy_process, mib=256)
    assert size == 256 * MiB
    assert growth < FLAT, f"proxy RSS grew {growth / MiB:.0f} MiB"


async def test_256_mib_upload_streams_with_flat_memory(proxy_process: tuple[str, int]) -> None:
    seen, growth, sha = await upload_through(*proxy_process, mib=256)
    assert seen == {"bytes": 256 * MiB, "sha256": sha}
    assert growth < FLAT, f"proxy RSS grew {growth / MiB:.0f} MiB"


@pytest.mark.slow
async def test_1_gib_download_streams_with_flat_memory(proxy_process: tuple[str, int]) -> None:
    size, growth = await download_through(*proxy_process, mib=1024)
    assert size == 1024 * MiB
    assert growth < FLAT, f"proxy RSS grew {growth / MiB:.0f} MiB"


@pytest.mark.slow
async def test_1_gib_upload_streams_with_flat_memory(proxy_process: tuple[str, int]) -> None:
    seen, growth, sha = await upload_through(*proxy_process, mib=1024)
    assert seen == {"bytes": 1024 * MiB, "sha256": sha}
    assert growth < FLAT, f"proxy RSS grew {growth / MiB:.0f} MiB"
