"""TCP `half_open`: the connection is accepted and never connected upstream: the client's bytes
are read and dropped, nothing ever comes back, nothing closes — the black hole of a service
that took the SYN and then hung, which only a client's own timeouts get out of. On a connection
already open, both directions stop (their bytes held, as by `timeout`) while it is in force.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaosproxy.faults.tcp.base import TcpFault, register
from chaosproxy.faults.tcp.plan import Plan


@register
@dataclass(frozen=True)
class TcpHalfOpen(TcpFault):
    name = "half_open"
    order = 1
    at_accept = True

    params = ()

    def shape(self, plan: Plan) -> str:
        plan.half_open = True
        plan.up.stall = plan.down.stall = True
        return "never connected upstream"

    def describe(self) -> str:
        return "tcp half_open (no upstream)"
