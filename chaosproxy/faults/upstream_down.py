"""`upstream_down`: behave as if the upstream refused the connection.

The fault raises the error the upstream clients raise for a refused connect, so the client gets
exactly the proxy's own 502 (same JSON body, no upstream address in it), without forwarding. It
is marked injected: counted as an injected fault, not as an upstream error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from chaosproxy.common.errors import REFUSED_DETAILS, UpstreamError
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, register


@register
@dataclass(frozen=True)
class UpstreamDownFault(Fault):
    name = "upstream_down"
    order = 60

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        Params(params, path, cls.params)
        return cls()

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        ex.record(self, "refused")
        raise UpstreamError("refused", REFUSED_DETAILS, injected=True)
