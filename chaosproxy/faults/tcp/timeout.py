"""TCP `timeout`: stop forwarding, then close the connection `timeout` later (0: never close,
hold it for as long as the fault is in force). The bytes are held, not dropped: reading from
the sender pauses, so its socket buffers fill as they would behind a partition, and when the
fault ends (phase over, rule removed) the held bytes go through in order — a TCP connection
across a healed partition loses nothing. (Toxiproxy drops the bytes instead.)
"""

from __future__ import annotations

from dataclasses import dataclass

from chaosproxy.faults import params as P
from chaosproxy.faults.tcp.base import TcpFault, direction_param, register
from chaosproxy.faults.tcp.plan import Plan


@register
@dataclass(frozen=True)
class TcpTimeout(TcpFault):
    name = "timeout"
    order = 10

    params = (P.duration("timeout", 0.0), direction_param("both"))

    timeout: float = 0.0  # seconds until the close; 0: never
    direction: str = "both"

    def shape(self, plan: Plan) -> str:
        for flow in plan.flows(self.direction):
            flow.stall = True
        if self.timeout > 0:
            close = plan.close_after
            plan.close_after = self.timeout if close is None else min(close, self.timeout)
        return f"timeout={self.timeout:.3f} {self.shown(self.direction)}"

    def describe(self) -> str:
        after = f"close after {self.timeout * 1000:g} ms" if self.timeout else "never close"
        return f"tcp timeout ({after}) {self.shown(self.direction)}"
