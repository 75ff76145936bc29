"""`throttle`: stream the response body at `rate` bytes per second, `chunk` bytes at a time.

The slow mobile link or the dribbling server: each piece leaves when the link would have
carried it (piece k at `start + bytes_up_to_k / rate`), so the last byte arrives at size/rate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Proceed, register


@register
@dataclass(frozen=True)
class ThrottleFault(Fault):
    name = "throttle"
    order = 90

    params = (
        P.rate("rate", missing="throttle needs a rate like 16KiB/s"),
        P.size("chunk", 1024, lo=1),
    )

    rate: float = 16 * 1024.0  # bytes per second
    chunk: int = 1024

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        ex.record(self, f"rate={self.rate:g}B/s")
        ex.filter_body(self.pace)
        await proceed()

    async def pace(self, ex: Exchange, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        clock, size, rate = ex.clock, self.chunk, self.rate
        start = clock.monotonic()
        sent = 0
        async for data in body:
            for i in range(0, len(data), size):
                piece = data[i : i + size]
                sent += len(piece)
                wait = start + sent / rate - clock.monotonic()
                if wait > 0:
                    await ex.sleep(wait)
                yield piece

    def describe(self) -> str:
        return f"throttle {self.rate:g} B/s"
