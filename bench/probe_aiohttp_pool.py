"""A probe: aiohttp's web server in front of chaosproxy's own upstream pool, no features.

It shows what aiohttp's server costs per request once the upstream side is lean: the step
between the yardstick (aiohttp on both sides) and the httptools probe (no aiohttp at all).

Usage: python bench/probe_aiohttp_pool.py --listen 127.0.0.1:8091 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import yarl
from _procs import run_peer
from aiohttp import StreamReader, web

from chaosproxy.proxy.upstream.client import NativeUpstream
from chaosproxy.proxy.upstream.interface import UpstreamConfig

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class _Body:
    """aiohttp's request stream as the pool's `OutgoingBody`: always streamed."""

    def __init__(self, stream: StreamReader) -> None:
        self.stream = stream

    def whole(self) -> bytes | None:
        return None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.stream.iter_any():
            yield chunk


async def main(host: str, port: int, upstream: str) -> None:
    pool = NativeUpstream(UpstreamConfig(url=yarl.URL(upstream)))

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        lines = b"".join(
            b"%s: %s\r\n" % (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in request.headers.items()
            if k.lower() not in HOP
        )
        has_length = "Content-Length" in request.headers
        body = _Body(request.content) if request.can_read_body else None
        up = await pool.request(request.method, request.raw_path, lines, True, has_length, body)
        resp = web.StreamResponse(status=up.status, reason=up.reason, headers=up.headers)
        await resp.prepare(request)
        try:
            async for chunk in up.body():
                await resp.write(chunk)
        finally:
            up.release()
        await resp.write_eof()
        return resp

    runner = web.ServerRunner(web.Server(handle, access_log=None))
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    print(f"aiohttp+pool probe on http://{host}:{port} -> {upstream}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    run_peer(main, __doc__, "127.0.0.1:8091")
