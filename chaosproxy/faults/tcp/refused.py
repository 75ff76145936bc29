"""TCP `refused`: the connection is reset (RST) as soon as it is accepted, before any upstream
connection is made: the client's connect() succeeded but its first read or write says
ECONNRESET. A listening socket cannot refuse one connection and accept the next (the kernel
completes the handshake before the proxy hears of it), so this is the closest a proxy gets to
`connection refused` per connection; to refuse every connection, disable the proxy (its port
then answers RST to the SYN, a true ECONNREFUSED). On a connection already open, it resets it.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaosproxy.faults.tcp.base import TcpFault, register
from chaosproxy.faults.tcp.plan import Plan


@register
@dataclass(frozen=True)
class TcpRefused(TcpFault):
    name = "refused"
    order = 0
    at_accept = True

    params = ()

    def shape(self, plan: Plan) -> str:
        plan.refuse = True
        return "reset at accept"

    def describe(self) -> str:
        return "tcp refused (RST at accept)"
