"""The native client's keep-alive pool: at most `pool_size` connections to one upstream.

A connection given back goes straight to the oldest waiting request, and so does the room a
closed one leaves: a request that waits is never overtaken by one that arrives later. Idle
connections are reused newest first and closed past `keepalive` by one timer for the pool.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from chaosproxy.common.errors import UpstreamError
from chaosproxy.proxy.upstream.connection import Conn

# What a waiter is handed: a connection to use, or None: room to open one (already counted).
_Grant = Conn | None


class Pool:
    """Connections in use, idle ones, and the queue of requests waiting for either."""

    def __init__(
        self,
        size: int,
        keepalive: float,
        connect: Callable[[float], Awaitable[Conn]],
    ) -> None:
        self.size = size
        self.keepalive = keepalive
        self._connect = connect  # opens one connection by a deadline (loop time)
        self._idle: deque[Conn] = deque()
        self._conns: set[Conn] = set()
        self._active = 0  # connections in use or being opened (handed-on room included)
        self._waiters: deque[asyncio.Future[_Grant]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._deadlines: asyncio.TimerHandle | None = None  # the head deadlines' sweep
        self._spare: asyncio.Task[None] | None = None  # a connection opened ahead of need
        self._closed = False
        # The loop of the last acquire: `release` runs once per request, and asking asyncio
        # for the running loop costs a getpid() system call each time.
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def in_use(self) -> int:
        return self._active

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def __repr__(self) -> str:
        return (
            f"<Pool [connections: {self.in_use} in use, {self.idle} idle | "
            f"requests: {self.waiting} waiting]>"
        )

    async def acquire(self, loop: asyncio.AbstractEventLoop, deadline: float, fresh: bool) -> Conn:
        """A connection for one exchange (`fresh`: never a reused one), by `deadline`."""
        self._loop = loop
        while True:
            if self._closed:
                raise UpstreamError("refused", "the upstream client is closed")
            idle = self._idle
            while idle and not fresh:
                conn = idle.pop()
                if not conn.usable:
                    continue
                if loop.time() - conn.idle_since > self.keepalive:
                    conn.close()
                    continue
                self._active += 1
                return conn
            if self._active + len(idle) < self.size:
                self._active += 1
                return await self._open(deadline)
            if idle:  # full, fresh wanted: drop the oldest idle one to make room
                idle.popleft().close()
                continue
            grant = await self._wait(loop, deadline)
            if grant is not None and grant.usable and not fresh:
                return grant
            if grant is not None:
                grant.close()
            return await self._open(deadline)  # the room is ours: counted in `_active`

    def take_idle(self, loop: asyncio.AbstractEventLoop) -> Conn | None:
        """An idle connection now, or None (then `acquire`): the newest usable one."""
        if self._closed or self._waiters:
            return None
        self._loop = loop
        idle = self._idle
        now = 0.0
        while idle:
            conn = idle.pop()
            if not conn.usable:
                continue
            if not now:
                now = loop.time()
            if now - conn.idle_since > self.keepalive:
                conn.close()
                continue
            self._active += 1
            return conn
        return None

    def add_spare(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """No connection was idle for a request while others are in use: open one more in the
        background (one at a time, within `size`), so that the pool grows to the traffic's
        concurrency and later requests find one idle rather than waiting in a task for one.
        Connections are opened on demand, never ahead of the first request."""
        if (
            self._spare is not None
            or self._closed
            or self._waiters
            or not self._active
            or self._active + len(self._idle) >= self.size
        ):
            return
        self._active += 1
        self._spare = loop.create_task(self._open_spare(deadline))

    async def _open_spare(self, deadline: float) -> None:
        try:
            conn = await self._open(deadline)  # a failure gives its room back
        except UpstreamError:
            return  # the upstream is down or slow: the requests that need it will say so
        finally:
            self._spare = None
        self.release(conn, reusable=True)

    def watch_deadlines(self, timeout: float) -> None:
        """Check the head deadline (`Response.deadline`) of every exchange in flight, every
        quarter of `timeout` (at most a second): one timer for the pool while any exchange is
        in flight, not one per request. A deadline fires at most that late."""
        if self._deadlines is None and not self._closed:
            step = min(1.0, max(0.02, timeout / 4))
            loop = self._loop or asyncio.get_running_loop()
            self._deadlines = loop.call_later(step, self._check_deadlines, loop, step)

    def _check_deadlines(self, loop: asyncio.AbstractEventLoop, step: float) -> None:
        self._deadlines = None
        now = loop.time()
        watched = False
        for conn in list(self._conns):
            resp = conn.resp
            if resp is not None and resp.deadline:
                if resp.deadline <= now:
                    resp.on_timeout()
                else:
                    watched = True
        if watched and not self._closed:
            self._deadlines = loop.call_later(step, self._check_deadlines, loop, step)

    async def _open(self, deadline: float) -> Conn:
        try:
            conn = await self._connect(deadline)
        except BaseException:
            self._free_room()
            raise
        self._conns.add(conn)
        return conn

    async def _wait(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Grant:
        waiter: asyncio.Future[_Grant] = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except TimeoutError:
            self._pass_on(waiter)
            raise UpstreamError(
                "timeout", "no upstream connection became free in time (pool full)"
            ) from None
        except BaseException:
            self._pass_on(waiter)
            raise

    def _pass_on(self, waiter: asyncio.Future[_Grant]) -> None:
        """A waiter that gave up: what it was handed meanwhile goes to the next one."""
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            grant = waiter.result()
            if grant is None:
                self._free_room()
            else:
                self.release(grant, reusable=grant.usable)
        elif not waiter.done():
            waiter.cancel()
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def _hand(self, grant: _Grant) -> bool:
        """Give `grant` to the oldest waiter still waiting; False when none is."""
        waiters = self._waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(grant)
                return True
        return False

    def _free_room(self) -> None:
        """One connection in use is gone: its room goes to a waiter, or back to the pool."""
        if not self._hand(None):
            self._active -= 1

    def release(self, conn: Conn, reusable: bool) -> None:
        """The exchange on `conn` is over; a reusable connection goes to the oldest waiter,
        or idle."""
        if reusable and conn.usable and not self._closed:
            conn.reused = True
            if self._hand(conn):
                return
            self._active -= 1
            loop = self._loop or asyncio.get_running_loop()
            conn.idle_since = loop.time()
            self._idle.append(conn)
            if self._sweep is None:
                self._schedule_sweep()
            return
        conn.close()
        self._free_room()

    def lost(self, conn: Conn) -> None:
        """The upstream closed `conn`; an idle one leaves room a waiter may take."""
        self._conns.discard(conn)
        if conn.resp is None and conn in self._idle:
            self._idle.remove(conn)
            if self._hand(None):
                self._active += 1

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweep = loop.call_later(self.keepalive, self._sweep_idle)

    def _sweep_idle(self) -> None:
        """Close connections idle past `keepalive`: one timer for the pool, not one per release."""
        self._sweep = None
        now = asyncio.get_running_loop().time()
        idle = self._idle
        while idle and now - idle[0].idle_since >= self.keepalive:
            idle.popleft().close()
        if idle:
            self._schedule_sweep()

    def close(self) -> None:
        self._closed = True
        if self._spare is not None:
            self._spare.cancel()
            self._spare = None
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if self._deadlines is not None:
            self._deadlines.cancel()
            self._deadlines = None
        self._idle.clear()
        for conn in list(self._conns):
            conn.close()
        for w in self._waiters:
            if not w.done():
                w.set_exception(UpstreamError("refused", "the upstream client is closed"))
        self._waiters.clear()
