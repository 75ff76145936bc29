"""`reset`: a real TCP RST (SO_LINGER 0, then close), so the client's socket says ECONNRESET.

`at: request` resets before anything is sent (and before forwarding), `at: headers` after the
status line and headers left, `after_bytes: N` after N bytes of the body left. What was written
is flushed to the kernel first: an abort would otherwise drop it in user space.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, cut_body, register


@register
@dataclass(frozen=True)
class ResetFault(Fault):
    name = "reset"
    # Last in a rule: request-side delays run first, and `after_bytes` counts the bytes as they
    # leave the proxy, after throttle and truncate.
    order = 96

    params = (P.choice("at", ("request", "headers"), "request"), P.size("after_bytes"))

    at: str = "request"  # request | headers | body
    after_bytes: int = 0

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        if p.has("after_bytes"):
            if p.has("at"):
                raise p.error("at", "give either at or after_bytes, not both")
            n: int = p["after_bytes"]
            return cls("body", n) if n > 0 else cls("headers")
        return cls(p["at"])

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        if self.at == "request":
            ex.record(self, "at=request")
            ex.reset()
            return
        if self.at == "headers":

            async def after_headers(ex: Exchange) -> None:
                ex.record(self, "at=headers")
                await ex.flush()
                ex.reset()

            ex.on_headers_sent(after_headers)
        else:
            ex.filter_body(self._cut)
        await proceed()

    def _cut(self, ex: Exchange, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass `after_bytes` bytes, then reset once they were written."""

        async def reset() -> None:
            ex.record(self, f"after_bytes={self.after_bytes}")
            await ex.flush()
            ex.reset()

        return cut_body(body, self.after_bytes, reset)
