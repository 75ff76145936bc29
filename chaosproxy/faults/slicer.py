"""`slicer`: the response body in small pieces of uneven size, with a pause before each next one.

The fragmenting path (a middlebox re-segmenting, a server that writes in dribs): where
`throttle` models bandwidth (even pieces at a rate), `slicer` models where a client's reads
break. Pieces are `size` ± `variation` bytes (drawn from the exchange's RNG, so a seed replays
them), each written on its own, `delay` after the previous one; boundaries fall mid-line,
mid-token, mid-character. The bytes themselves are unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, register


@register
@dataclass(frozen=True)
class SlicerFault(Fault):
    name = "slicer"
    order = 92  # slices what throttle paced; truncate and reset count the pieces as they leave

    params = (
        P.size("size", 64, lo=1),
        P.size("variation", 0),
        P.duration("delay", 0.01),
    )

    size: int = 64  # mean bytes per piece
    variation: int = 0  # each piece is size ± up to this many bytes
    delay: float = 0.01  # seconds between one piece and the next

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        if p["variation"] >= p["size"]:
            raise p.error(
                "variation", f"must be < size ({p.get('size', 64)!r}): a piece has ≥ 1 byte"
            )
        return cls(p["size"], p["variation"], p["delay"])

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        ex.record(self, f"size={self.size}±{self.variation}")
        ex.filter_body(self.slice)
        await proceed()

    async def slice(self, ex: Exchange, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Re-cut `body` into pieces; every piece but the first waits `delay`."""
        lo, hi = self.size - self.variation, self.size + self.variation
        rng, first = ex.rng, True
        async for data in body:
            at = 0
            while at < len(data):
                n = rng.randint(lo, hi) if hi > lo else lo
                if not first:
                    await ex.sleep(self.delay)
                first = False
                yield data[at : at + n]
                at += n

    def describe(self) -> str:
        return f"slicer {self.size}±{self.variation} B every {self.delay * 1000:g} ms"
