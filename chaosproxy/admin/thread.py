"""The admin listener on its own thread and event loop.

On the proxy's loop, an admin call waits behind every request the loop has queued: with the
data plane saturated, stopping a scenario took a third of a second. Here the admin app has a
loop of its own; engine changes it makes are thread-safe (see `Engine` and `EventBus`), and
what must run on the proxy loop (the upstream pool, for /readyz) is handed over with
`Runtime.on_proxy_loop`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading

from aiohttp import web

log = logging.getLogger("chaosproxy.admin")


class AdminThread:
    """Serve `app` on HOST:PORT from a daemon thread; `start` returns the bound port."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The admin loop (None before start): listeners living there hand off to it."""
        return self._loop

    async def start(self) -> int:
        """Bind and serve; raises what binding raised (OSError: port in use)."""
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name="chaosproxy-admin", daemon=True
        )
        self._thread.start()
        return await asyncio.wrap_future(ready)

    def _main(self, ready: concurrent.futures.Future[int]) -> None:
        loop = asyncio.new_event_loop()  # uvloop's when `chaosproxy run` installed its policy
        asyncio.set_event_loop(loop)
        self._loop = loop
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False, shutdown_timeout=1)
        try:
            try:
                port = loop.run_until_complete(self._serve(runner))
            except BaseException as e:
                loop.run_until_complete(runner.cleanup())
                ready.set_exception(e)
                return
            ready.set_result(port)
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
        except Exception:
            log.exception("admin listener failed")
        finally:
            loop.close()
            self._done.set_result(None)

    async def _serve(self, runner: web.AppRunner) -> int:
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        return int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving (in-flight admin calls get up to 1 s) and wait for the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.wrap_future(self._done)
