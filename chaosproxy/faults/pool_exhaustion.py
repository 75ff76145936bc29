"""`pool_exhaustion`: a pool of `size` slots shared by the requests the rule matches.

Each request holds a slot while it is upstream (after an optional `hold`, the work done with the
slot, which the client sees as latency). With no free slot it queues, first come first served,
up to `queue_timeout`, then fails with `on_exhausted`: an `error` (`status`, default 500, with
a body saying the connection pool is exhausted) or a `reset`. Under load this cascades like a
database pool running dry: latency first, then errors.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Gauge, Params, Proceed, register


class PoolState:
    """Slots in use and the FIFO of waiters; a freed slot passes straight to the first waiter."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)  # a resolved or abandoned waiter leaves the queue at once

    def try_acquire(self) -> bool:
        if self.in_use < self.size and not self.waiting:
            self.in_use += 1
            return True
        return False

    async def acquire(self, ex: Exchange, timeout: float) -> bool:
        """Wait up to `timeout` (on the exchange's clock) for a slot; False when none came."""
        if self.try_acquire():
            return True
        if timeout <= 0:
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        timer = asyncio.ensure_future(ex.sleep(timeout))
        try:
            await asyncio.wait((fut, timer), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed a slot while the client left: pass it on
            raise
        finally:
            timer.cancel()
            if not fut.done():
                fut.cancel()
                self._waiters.remove(fut)
        return not fut.cancelled()

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot changes hands; in_use stays
                return
        self.in_use -= 1

    def __repr__(self) -> str:
        return f"<PoolState size={self.size} in_use={self.in_use} waiting={self.waiting}>"


@register
@dataclass(frozen=True)
class PoolExhaustionFault(Fault):
    name = "pool_exhaustion"
    order = 20

    params = (
        P.integer("size", lo=1, missing="pool_exhaustion needs a pool size"),
        P.duration("hold", 0.0),
        P.duration("queue_timeout", 1.0),
        P.choice("on_exhausted", ("error", "reset"), "error"),
        P.status("status", 500),
    )

    size: int = 10
    hold: float = 0.0
    queue_timeout: float = 1.0
    on_exhausted: str = "error"  # error | reset
    status: int = 500
    state: PoolState = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", PoolState(self.size))

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        if p.has("status") and p["on_exhausted"] != "error":
            raise p.error("status", "only applies with on_exhausted: error")
        return cls(p["size"], p["hold"], p["queue_timeout"], p["on_exhausted"], p["status"])

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        pool = self.state
        t0 = ex.clock.monotonic()
        if not await pool.acquire(ex, self.queue_timeout):
            await self._exhausted(ex, ex.clock.monotonic() - t0)
            return
        try:
            waited = ex.clock.monotonic() - t0
            if waited > 0 or self.hold > 0:
                ex.record(self, f"waited={waited:.3f}")
            if self.hold > 0:
                await ex.sleep(self.hold)
            await proceed()
        finally:
            pool.release()

    async def _exhausted(self, ex: Exchange, waited: float) -> None:
        ex.record(self, f"exhausted waited={waited:.3f} {self.on_exhausted}")
        if self.on_exhausted == "reset":
            ex.reset()
            return
        details = (
            f"connection pool exhausted: all {self.size} connections in use, "
            f"none freed within {self.queue_timeout:g}s"
        )
        body = ex.error_body(self.status, details)
        await ex.respond(self.status, body, [("Content-Type", "application/json")])

    def describe(self) -> str:
        return f"pool_exhaustion size {self.size}"

    def gauges(self) -> tuple[Gauge, ...]:
        return (
            Gauge("pool_in_use", POOL_IN_USE_HELP, float(self.state.in_use)),
            Gauge("pool_waiting", POOL_WAITING_HELP, float(self.state.waiting)),
        )


POOL_IN_USE_HELP = "Slots held in a pool_exhaustion fault's simulated pool."
POOL_WAITING_HELP = "Requests queued for a slot of a pool_exhaustion fault's simulated pool."
