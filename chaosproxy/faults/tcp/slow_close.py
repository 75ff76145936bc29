"""TCP `slow_close`: when one side ends its stream (FIN), the other side hears of it `delay`
later; the bytes before it are not held. A client that closes and waits for the server's close
(or a server whose close a pool waits for) sees its close hang.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaosproxy.faults import params as P
from chaosproxy.faults.tcp.base import TcpFault, direction_param, register
from chaosproxy.faults.tcp.plan import Plan


@register
@dataclass(frozen=True)
class TcpSlowClose(TcpFault):
    name = "slow_close"
    order = 80

    params = (
        P.duration("delay", missing="slow_close needs a delay (a duration like 2s)"),
        direction_param(),
    )

    delay: float = 1.0
    direction: str = "downstream"

    def shape(self, plan: Plan) -> str:
        for flow in plan.flows(self.direction):
            flow.close_delay = max(flow.close_delay, self.delay)
        return f"delay={self.delay:.3f} {self.shown(self.direction)}"

    def describe(self) -> str:
        return f"tcp slow_close {self.delay * 1000:g} ms {self.shown(self.direction)}"
