"""`upstream_down`: behave as if the upstream refused the connection.

The fault raises the same error the upstream client raises for a refused connect, so the client
gets exactly the proxy's own 502 (same JSON body, same logs and metrics), without forwarding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import yarl

from chaosproxy.errors import UpstreamError
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, register


def refused_details(upstream_url: str) -> str:
    """The details the upstream client gives for a refused connect to `upstream_url`."""
    url = yarl.URL(upstream_url)
    where = f"({url.host!r}, {url.port})"
    return f"cannot connect to the upstream: [Errno 111] Connect call failed {where}"


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
        raise UpstreamError("refused", refused_details(ex.upstream_url))
