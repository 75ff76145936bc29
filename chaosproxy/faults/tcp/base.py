"""The TCP fault interface and its registry, apart from the HTTP faults' (`chaosproxy.faults`).

A TCP fault is a frozen `Fault` (so rules, decisions, status, gauges and events carry it like
any fault) that declares its parameters with `chaosproxy.faults.params` and, instead of acting
on an HTTP exchange, adds its wish to a connection's `Plan` (`shape`). The names may repeat an
HTTP fault's (`latency`, `reset`, `slicer`): a rule with `match: {tcp: NAME}` looks its faults up
here, every other rule in the HTTP registry. Nothing lists faults: `registry()` imports every
module of this package but `base`, and each registers itself with `@register`.
"""

from __future__ import annotations

from typing import ClassVar

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Fault, Registry
from chaosproxy.faults.tcp.plan import BOTH, DIRECTIONS, DOWNSTREAM, Plan

__all__ = ["TcpFault", "build", "direction_param", "register", "registry"]


def direction_param(default: str = DOWNSTREAM) -> P.Param:
    """`direction: upstream | downstream | both` (upstream: the bytes the client sends)."""
    return P.choice("direction", DIRECTIONS, default)


class TcpFault(Fault):
    """Base class of the TCP faults: `shape` adds the fault's effect to a connection's plan
    and returns the outcome the journal records (`delay=0.050 downstream`)."""

    protocol: ClassVar[str] = "tcp"
    # True: the fault only means something when a connection is accepted (refused, half_open).
    at_accept: ClassVar[bool] = False

    def shape(self, plan: Plan) -> str:
        raise NotImplementedError

    @staticmethod
    def shown(direction: str) -> str:
        return "both ways" if direction == BOTH else direction


TCP_FAULTS: Registry[TcpFault] = Registry(
    "chaosproxy.faults.tcp", frozenset({"base", "plan"}), "TCP fault"
)
register = TCP_FAULTS.register
registry = TCP_FAULTS.all
build = TCP_FAULTS.build
