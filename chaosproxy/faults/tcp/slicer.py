"""TCP `slicer`: each chunk going one way is cut into slices of `average_size` ± `size_variation`
bytes, written one by one with `delay` between them: a peer's reads break mid-message, the way
re-segmenting middleboxes and small windows break them. The bytes are unchanged; slice sizes
come from the connection's RNG (seeded runs replay them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Params
from chaosproxy.faults.tcp.base import TcpFault, direction_param, register
from chaosproxy.faults.tcp.plan import Plan


@register
@dataclass(frozen=True)
class TcpSlicer(TcpFault):
    name = "slicer"
    order = 50

    params = (
        P.size("average_size", 64, lo=1),
        P.size("size_variation", 0),
        P.duration("delay", 0.0),
        direction_param(),
    )

    average_size: int = 64
    size_variation: int = 0
    delay: float = 0.0
    direction: str = "downstream"

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        if p["size_variation"] >= p["average_size"]:
            raise p.error(
                "size_variation",
                f"must be < average_size ({p.get('average_size', 64)!r}): a slice has ≥ 1 byte",
            )
        return cls(p["average_size"], p["size_variation"], p["delay"], p["direction"])

    def shape(self, plan: Plan) -> str:
        for flow in plan.flows(self.direction):
            if flow.slices is None:
                flow.slices = (self.average_size, self.size_variation, self.delay)
        return f"size={self.average_size}±{self.size_variation} {self.shown(self.direction)}"

    def describe(self) -> str:
        return (
            f"tcp slicer {self.average_size}±{self.size_variation} B every "
            f"{self.delay * 1000:g} ms {self.shown(self.direction)}"
        )
