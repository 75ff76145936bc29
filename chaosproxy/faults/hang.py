"""`hang`: accept the request and send nothing — the upstream that stopped answering.

Without `duration` it waits until the client gives up (its disconnect cancels the handler);
with one it then ends the way a proxy or server would: `close` (FIN), `reset` (RST) or `error`
(a `status`, 504 by default, in the proxy's JSON error shape).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, register


@register
@dataclass(frozen=True)
class HangFault(Fault):
    name = "hang"
    order = 70

    params = (
        P.duration("duration"),
        P.choice("then", ("close", "reset", "error"), "close"),
        P.status("status", 504),
    )

    duration: float | None = None  # None: until the client gives up
    then: str = "close"  # close | reset | error
    status: int = 504

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        if p.has("status") and p["then"] != "error":
            raise p.error("status", "only applies with then: error")
        return cls(p["duration"], p["then"], p["status"])

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        if self.duration is None:
            ex.record(self, "until client gives up")
            await asyncio.get_running_loop().create_future()  # cancelled when the client leaves
            return
        ex.record(self, f"duration={self.duration:g} then={self.then}")
        await ex.sleep(self.duration)
        if self.then == "close":
            ex.close()
        elif self.then == "reset":
            ex.reset()
        else:
            body = ex.error_body(
                self.status, f"no answer from the upstream within {self.duration:g}s"
            )
            await ex.respond(self.status, body, [("Content-Type", "application/json")])

    def describe(self) -> str:
        if self.duration is None:
            return "hang until the client gives up"
        return f"hang {self.duration:g}s then {self.then}"
