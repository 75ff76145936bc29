"""TCP `reset`: a real RST to both sides (SO_LINGER 0, then close) `timeout` after the fault
applies (0: at once), so the client's socket says ECONNRESET mid-conversation, as when a
database is killed or a middlebox drops its state. Toxiproxy calls it `reset_peer`.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaosproxy.faults import params as P
from chaosproxy.faults.tcp.base import TcpFault, register
from chaosproxy.faults.tcp.plan import Plan


@register
@dataclass(frozen=True)
class TcpReset(TcpFault):
    name = "reset"
    order = 20

    params = (P.duration("timeout", 0.0),)

    timeout: float = 0.0

    def shape(self, plan: Plan) -> str:
        after = plan.reset_after
        plan.reset_after = self.timeout if after is None else min(after, self.timeout)
        return f"timeout={self.timeout:.3f}"

    def describe(self) -> str:
        return f"tcp reset after {self.timeout * 1000:g} ms"
