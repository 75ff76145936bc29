"""`rate_limit`: a token bucket (`rps`, `burst`) shared by the requests the rule matches; over
the limit the client gets 429 with `Retry-After` (whole seconds, rounded up), as from an API
gateway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, register


class TokenBucket:
    """`burst` tokens, refilled at `rps` per second; one token per admitted request."""

    def __init__(self, rps: float, burst: int) -> None:
        self.rps = rps
        self.burst = burst
        self.tokens = float(burst)
        self._last: float | None = None

    def take(self, now: float) -> float:
        """0.0 when a token was taken, else the seconds until one is available."""
        if self._last is not None:
            self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rps)
        self._last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rps

    def __repr__(self) -> str:
        return f"<TokenBucket rps={self.rps:g} burst={self.burst} tokens={self.tokens:.2f}>"


@register
@dataclass(frozen=True)
class RateLimitFault(Fault):
    name = "rate_limit"
    order = 10

    params = (
        P.positive_number("rps", missing="rate_limit needs rps (requests per second)"),
        P.integer("burst", lo=1),
    )

    rps: float = 10.0
    burst: int = 10
    state: TokenBucket = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", TokenBucket(self.rps, self.burst))

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        rps: float = p["rps"]
        burst: int | None = p["burst"]
        return cls(rps, max(1, math.ceil(rps)) if burst is None else burst)

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        wait = self.state.take(ex.clock.monotonic())
        if wait == 0.0:
            await proceed()
            return
        retry_after = max(1, math.ceil(wait))
        ex.record(self, f"status=429 retry_after={retry_after}")
        body = ex.error_body(
            429, f"rate limit of {self.rps:g} requests per second (burst {self.burst}) exceeded"
        )
        headers = [("Content-Type", "application/json"), ("Retry-After", str(retry_after))]
        await ex.respond(429, body, headers)

    def describe(self) -> str:
        return f"rate_limit {self.rps:g}/s burst {self.burst}"
