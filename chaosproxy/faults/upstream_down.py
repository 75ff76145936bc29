"""`upstream_down`: behave as if the upstream refused the connection.

The fault raises the same error the upstream client raises for a refused connect, so the client
gets exactly the proxy's own 502 (same JSON body, same logs and metrics), without forwarding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from chaosproxy.errors import UpstreamError
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, register

REFUSED = "cannot connect to the upstream: [Errno 111] Connection refused"


@register
@dataclass(frozen=True)
class UpstreamDownFault(Fault):
    name = "upstream_down"
    order = 60

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        Params(params, path, ())
        return cls()

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        ex.record(self.name, "refused")
        raise UpstreamError("refused", REFUSED)
