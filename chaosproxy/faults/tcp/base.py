"""The TCP fault interface and its registry, apart from the HTTP faults' (`chaosproxy.faults`).

A TCP fault is a frozen `Fault` (so rules, decisions, status, gauges and events carry it like
any fault) that declares its parameters with `chaosproxy.faults.params` and, instead of acting
on an HTTP exchange, adds its wish to a connection's `Plan` (`shape`). The names may repeat an
HTTP fault's (`latency`, `reset`, `slicer`): a rule with `match: {tcp: NAME}` looks its faults up
here, every other rule in the HTTP registry. Nothing lists faults: `registry()` imports every
module of this package but `base`, and each registers itself with `@register`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any, ClassVar

from chaosproxy.common.errors import ConfigError, Problem
from chaosproxy.faults import params as P
from chaosproxy.faults.base import Fault
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


_REGISTRY: dict[str, type[TcpFault]] = {}
_DISCOVERED: list[bool] = []


def register(cls: type[TcpFault]) -> type[TcpFault]:
    """Class decorator: make a TCP fault available by its YAML name."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> Mapping[str, type[TcpFault]]:
    """Every TCP fault by name (the first call imports each module of this package)."""
    if not _DISCOVERED:
        import chaosproxy.faults.tcp as package

        for mod in pkgutil.iter_modules(package.__path__):
            if mod.name not in ("base", "plan"):
                importlib.import_module(f"{package.__name__}.{mod.name}")
        _DISCOVERED.append(True)
    return _REGISTRY


def build(name: str, params: Any, path: str) -> TcpFault:
    """One TCP fault from its YAML name and parameters; an unknown name is a ConfigError."""
    reg = registry()
    cls = reg.get(name)
    if cls is None:
        raise ConfigError(
            Problem(f"unknown TCP fault {name!r}; TCP faults: {', '.join(sorted(reg))}", path)
        )
    return cls.from_params({} if params is None else params, f"{path}.{name}")
