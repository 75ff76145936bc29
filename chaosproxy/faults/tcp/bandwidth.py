"""TCP `bandwidth`: the bytes going one way are paced to `rate` (bytes per second, or `100KB/s`,
`1MiB/s`), the way a thin link carries them: byte k leaves about k/rate seconds after the
stream started flowing. Reading from the sender pauses while the paced bytes queue up (bounded),
so the sender's own socket buffer fills as it would behind a slow link.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaosproxy.faults import params as P
from chaosproxy.faults.tcp.base import TcpFault, direction_param, register
from chaosproxy.faults.tcp.plan import Plan


@register
@dataclass(frozen=True)
class TcpBandwidth(TcpFault):
    name = "bandwidth"
    order = 60

    params = (
        P.rate("rate", missing="bandwidth needs a rate like 100KB/s (bytes per second)"),
        direction_param(),
    )

    rate: float = 100_000.0
    direction: str = "downstream"

    def shape(self, plan: Plan) -> str:
        for flow in plan.flows(self.direction):
            flow.rate = self.rate if flow.rate is None else min(flow.rate, self.rate)
        return f"rate={self.rate:g}B/s {self.shown(self.direction)}"

    def describe(self) -> str:
        return f"tcp bandwidth {self.rate:g} B/s {self.shown(self.direction)}"
