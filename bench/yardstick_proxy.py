"""The measuring stick: a minimal streaming aiohttp+uvloop reverse proxy with no features.

Usage: python bench/yardstick_proxy.py --listen 127.0.0.1:8090 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import asyncio

import aiohttp
import yarl
from _procs import run_peer
from aiohttp import web

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


def make_handler(upstream: str, session: aiohttp.ClientSession) -> web.Server:
    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        url = yarl.URL(upstream + request.raw_path, encoded=True)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP]
        body = request.content if request.can_read_body else None
        async with session.request(
            request.method, url, headers=headers, data=body, allow_redirects=False
        ) as up:
            resp = web.StreamResponse(status=up.status, reason=up.reason)
            for k, v in up.headers.items():
                if k.lower() not in HOP:
                    resp.headers.add(k, v)
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    return web.Server(handle, access_log=None)


async def main(host: str, port: int, upstream: str) -> None:
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        runner = web.ServerRunner(make_handler(upstream.rstrip("/"), session))
        await runner.setup()
        await web.TCPSite(runner, host, port, backlog=1024).start()
        print(f"yardstick proxy on http://{host}:{port} -> {upstream}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    run_peer(main, __doc__, "127.0.0.1:8090")
