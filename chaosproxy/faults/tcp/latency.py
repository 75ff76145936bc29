"""TCP `latency`: each chunk of bytes going one way is held `latency` (± `jitter`) before it is
passed on, or a delay drawn from a distribution like the HTTP `latency` fault's (`uniform`,
`normal`, `lognormal`, capped by `max`). Chunks keep their order: a chunk never overtakes the
one before it, so a smaller draw after a larger one waits for it. A delay is drawn per chunk
from the connection's RNG (seeded runs replay them). `direction: both` delays each way, so a
request/response round trip grows by twice the delay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Params
from chaosproxy.faults.latency import SHAPE_PARAMS, LatencyFault
from chaosproxy.faults.tcp.base import TcpFault, direction_param, register
from chaosproxy.faults.tcp.plan import Plan

_DISTRIBUTION_KEYS = ("distribution", "min", "max", "mean", "stddev", "median", "p99")


@register
@dataclass(frozen=True)
class TcpLatency(TcpFault):
    name = "latency"
    order = 30

    params = (
        P.duration("latency"),
        *SHAPE_PARAMS,
        direction_param(),
    )

    sampler: LatencyFault = field(default_factory=LatencyFault)
    direction: str = "downstream"

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        direction: str = p["direction"]
        if p["distribution"] is None:
            if not p.has("latency"):
                raise p.error("latency", "missing: latency needs latency (a duration like 50ms)")
            for key in _DISTRIBUTION_KEYS:
                if p.has(key) and key != "max":
                    raise p.error(key, "does not apply to a fixed latency (give distribution)")
            if p["jitter"] > p["latency"]:
                raise p.error("jitter", f"must be ≤ latency ({p.get('latency')!r})")
            return cls(LatencyFault("fixed", p["latency"], p["jitter"], p["max"]), direction)
        if p.has("latency") or p.has("jitter"):
            key = "latency" if p.has("latency") else "jitter"
            raise p.error(key, "does not apply to a distribution (a fixed latency takes it)")
        http = {k: v for k, v in p.raw.items() if k in _DISTRIBUTION_KEYS}
        return cls(LatencyFault.from_params(http, path), direction)

    def shape(self, plan: Plan) -> str:
        for flow in plan.flows(self.direction):
            flow.latency.append(self.sampler.sample)
        s = self.sampler
        what = f"latency={s.a:.3f}" if s.kind == "fixed" else f"distribution={s.kind}"
        return f"{what} {self.shown(self.direction)}"

    def describe(self) -> str:
        s = self.sampler
        if s.kind == "fixed":
            jitter = f" ± {s.b * 1000:g} ms" if s.b else ""
            return f"tcp latency {s.a * 1000:g} ms{jitter} {self.shown(self.direction)}"
        return f"tcp latency {s.kind} {self.shown(self.direction)}"
