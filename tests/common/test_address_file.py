"""`run --address-file`: a proxy on ports of the kernel's choosing says where it listens, and a
file left by a proxy that stopped names no live proxy."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from chaosproxy.common.address_file import Addresses, read, split, write


def test_the_file_is_written_whole_and_read_back(tmp_path: Path) -> None:
    where = tmp_path / "a.json"
    assert read(str(where)) is None  # not there yet
    bound = Addresses("::1:1", "127.0.0.1:2", None, {"db": "127.0.0.1:3"}, pid=7)
    write(str(where), bound)
    assert read(str(where)) == bound
    assert list(tmp_path.iterdir()) == [where]  # no temporary file left beside it
    where.write_text('{"listen": 1}')
    assert read(str(where)) is None  # not one of ours: as if absent
    assert split("[::1]:8080") == ("::1", 8080) and split("0.0.0.0:1") == ("0.0.0.0", 1)


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def bound(proc: asyncio.subprocess.Process, where: Path) -> Addresses:
    while (found := read(str(where))) is None:
        assert proc.returncode is None, "the proxy exited before binding"
        await asyncio.sleep(0.05)  # polling a file that appears once: no event to wait on
    return found


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_proxy_on_port_0_says_where_it_listens_and_takes_it_back_at_exit(
    upstream: str, tmp_path: Path, workers: str
) -> None:
    where = tmp_path / "proxy-address.json"
    extra = ["--tcp", "db=127.0.0.1:0:127.0.0.1:9"] if workers == "1" else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chaosproxy",
        "run",
        "--upstream",
        upstream,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--workers",
        workers,
        "--address-file",
        str(where),
        *extra,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        found = await asyncio.wait_for(bound(proc, where), 60)
        assert found.pid == proc.pid
        assert split(found.listen)[1] != 0 and split(found.admin)[1] != 0
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://{found.listen}/") as r:
                assert (r.status, await r.text()) == (200, "hello")
            async with s.get(f"http://{found.admin}/healthz") as r:
                assert r.status == 200
        if workers == "1":
            assert split(found.tcp["db"])[1] != 0  # the TCP proxy's port, chosen too
        else:
            assert found.tcp == {}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    assert not where.exists()  # a file left behind would name a proxy that is gone
