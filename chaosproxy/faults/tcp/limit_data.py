"""TCP `limit_data`: once `bytes` bytes went one way (counted from when the fault applied), the
connection is closed (FIN both sides, after those bytes): a reply cut short by a dying peer.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaosproxy.faults import params as P
from chaosproxy.faults.tcp.base import TcpFault, direction_param, register
from chaosproxy.faults.tcp.plan import Plan


@register
@dataclass(frozen=True)
class TcpLimitData(TcpFault):
    name = "limit_data"
    order = 70

    params = (
        P.Param(
            "bytes",
            P.size("bytes").schema,
            P.size("bytes").read,
            None,
            "limit_data needs bytes (how many pass before the close)",
        ),
        direction_param(),
    )

    bytes: int = 0
    direction: str = "downstream"

    def shape(self, plan: Plan) -> str:
        for flow in plan.flows(self.direction):
            flow.limit = self.bytes if flow.limit is None else min(flow.limit, self.bytes)
        return f"bytes={self.bytes} {self.shown(self.direction)}"

    def describe(self) -> str:
        return f"tcp limit_data {self.bytes} B {self.shown(self.direction)}"
