"""`latency`: delay the request before forwarding, or the reply before its first byte.

A fixed delay (`delay`, optionally `jitter` ± uniform) or a distribution: `uniform` (`min`,
`max`), `normal` (`mean`, `stddev`) or `lognormal` (`median`, `p99`), the long right tail real
services show. `max` clamps every sample. Samples come from the exchange's RNG so seeded runs
replay them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, Reply, register

# z-score of the 99th percentile of the standard normal distribution.
Z99 = 2.3263478740408408

_NEEDS = {
    "fixed": ("delay",),
    "uniform": ("min", "max"),
    "normal": ("mean", "stddev"),
    "lognormal": ("median", "p99"),
}
_ALLOWED = {
    "fixed": {"delay", "jitter", "max", "at"},
    "uniform": {"distribution", "min", "max", "at"},
    "normal": {"distribution", "mean", "stddev", "max", "at"},
    "lognormal": {"distribution", "median", "p99", "max", "at"},
}


# The delay's shape, shared with the TCP latency fault (`faults/tcp/latency.py`): a fixed delay
# with jitter, or a distribution.
SHAPE_PARAMS = (
    P.duration("jitter", 0.0),
    P.choice("distribution", ("uniform", "normal", "lognormal"), None),
    P.duration("min"),
    P.duration("max"),
    P.duration("mean"),
    P.duration("stddev"),
    P.duration("median"),
    P.duration("p99"),
)


@register
@dataclass(frozen=True)
class LatencyFault(Fault):
    name = "latency"
    order = 30

    params = (
        P.duration("delay"),
        *SHAPE_PARAMS,
        P.choice("at", ("request", "response"), "request"),
    )

    kind: str = "fixed"  # fixed | uniform | normal | lognormal
    a: float = 0.0  # delay, min, mean, or mu (log of the median)
    b: float = 0.0  # jitter, max, stddev, or sigma
    max: float | None = None
    at: str = "request"

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        kind: str = p["distribution"] or "fixed"
        for key in p.raw:
            if key not in _ALLOWED[kind]:
                what = f"distribution: {kind}" if kind != "fixed" else "a fixed delay"
                raise p.error(str(key), f"does not apply to {what}")
        for key in _NEEDS[kind]:
            if not p.has(key):
                needed = " and ".join(_NEEDS[kind])
                where = f"distribution {kind}" if kind != "fixed" else "latency"
                raise p.error(key, f"missing: {where} needs {needed}")
        at: str = p["at"]
        cap: float | None = p["max"] if kind != "uniform" else None
        if kind == "fixed":
            a, b = p["delay"], p["jitter"]
            if b > a:
                raise p.error("jitter", f"must be ≤ delay ({p.get('delay')!r})")
        elif kind == "uniform":
            a, b = p["min"], p["max"]
            if b < a:
                raise p.error("max", "must be ≥ min")
        elif kind == "normal":
            a, b = p["mean"], p["stddev"]
        else:
            median, p99 = p["median"], p["p99"]
            if median <= 0:
                raise p.error("median", "must be > 0")
            if p99 < median:
                raise p.error("p99", "must be ≥ median")
            a, b = math.log(median), (math.log(p99) - math.log(median)) / Z99
        return cls(kind, a, b, cap, at)

    def sample(self, rng: Any) -> float:
        """One delay in seconds, never negative, clamped by `max`."""
        if self.kind == "fixed":
            d = self.a + (rng.uniform(-self.b, self.b) if self.b else 0.0)
        elif self.kind == "uniform":
            d = rng.uniform(self.a, self.b)
        elif self.kind == "normal":
            d = rng.gauss(self.a, self.b)
        else:
            d = rng.lognormvariate(self.a, self.b)
        if self.max is not None and d > self.max:
            d = self.max
        return d if d > 0.0 else 0.0

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        if self.at == "request":
            await self._delay(ex)
            await proceed()
            return

        async def delay_reply(ex: Exchange, reply: Reply) -> Reply | None:
            await self._delay(ex)
            return reply

        ex.on_reply(delay_reply)
        await proceed()

    async def _delay(self, ex: Exchange) -> None:
        d = self.sample(ex.rng)
        ex.record(self, f"delay={d:.3f}")
        await ex.sleep(d)

    def describe(self) -> str:
        return f"latency {self.kind} at {self.at}"
