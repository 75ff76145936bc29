"""Injectable time. Engine and fault logic take a Clock, so tests use FakeClock and never sleep."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def wall(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    # The C functions themselves, not methods wrapping them: the per-request path reads the
    # clock several times a request, and a Python frame each time showed.
    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to; sleepers wake when `advance` passes their deadline."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._wall_offset = 1_700_000_000.0 - start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._watchers: list[tuple[int, float | None, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        self._notify()
        await fut

    def advance(self, seconds: float) -> None:
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    @property
    def sleepers(self) -> int:
        return sum(1 for *_, f in self._sleepers if not f.done())

    def _sleeping(self, until: float | None) -> int:
        return sum(
            1 for t, _, f in self._sleepers if not f.done() and (until is None or t == until)
        )

    async def wait_sleepers(self, n: int, *, until: float | None = None) -> None:
        """Return once `n` tasks sleep on this clock (with `until`: ones that wake at that
        instant, `monotonic() + seconds` as the sleeper computed it). Tests use it to know a
        task reached its sleep instead of yielding to the event loop a guessed number of times."""
        if self._sleeping(until) >= n:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.append((n, until, fut))
        try:
            await fut
        finally:
            self._watchers = [w for w in self._watchers if w[2] is not fut]

    def _notify(self) -> None:
        for n, until, fut in self._watchers:
            if not fut.done() and self._sleeping(until) >= n:
                fut.set_result(None)


SYSTEM_CLOCK = SystemClock()
