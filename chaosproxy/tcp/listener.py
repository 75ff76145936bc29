"""One named TCP proxy: its listening socket, its connections and their counts.

Each accepted connection is decided by the engine like an HTTP request (`engine.decide` on a
`ConnectionView`: no method, the path `tcp:NAME`, the client's address), so the same scenarios,
phases, seeds and ad-hoc rules drive it; the faults of the decision become the connection's
`Plan`. `redecide()` does it again for every open connection when what is in force changes.
Every fault that acts is reported as a `FaultInjected` event (journal, metrics), once per
connection and decision.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from chaosproxy.common.events import EventBus, FaultInjected
from chaosproxy.common.wake import Deadlines
from chaosproxy.faults.tcp.base import TcpFault
from chaosproxy.faults.tcp.plan import Plan
from chaosproxy.tcp.relay import Relay

if TYPE_CHECKING:
    from chaosproxy.engine.core import Decision, Engine

log = logging.getLogger("chaosproxy.tcp")

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
TCP_METHOD = "TCP"  # what journal lines and events say for a connection's method


def view_path(name: str) -> str:
    """The path a connection of proxy `name` shows to rules (and the journal): `tcp:NAME`."""
    return f"tcp:{name}"


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """A connection as rules see it. An empty method tells the engine it is no HTTP request:
    only the rules written for this proxy (`match: {tcp: NAME}`) are candidates."""

    path: str
    client_ip: str
    method: str = ""
    query_string: str = ""
    headers: Mapping[str, str] = field(default_factory=lambda: _NO_HEADERS)


@dataclass
class Counts:
    """A proxy's totals since it was added (the open connections' bytes are added live)."""

    accepted: int = 0
    refused: int = 0  # reset at accept by a `refused` fault
    connect_failed: int = 0  # the upstream could not be reached
    bytes_up: int = 0  # client → upstream, of closed connections
    bytes_down: int = 0


class TcpProxy:
    """Listens on `listen` and relays each connection to `upstream`."""

    def __init__(
        self,
        name: str,
        listen: tuple[str, int],
        upstream: tuple[str, int],
        engine: Engine,
        bus: EventBus,
        deadlines: Deadlines,
        connect_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.deadlines = deadlines  # where latency toxics wait: the registry's, for every proxy
        self.listen = listen
        self.upstream = upstream
        self.engine = engine
        self.bus = bus
        self.connect_timeout = connect_timeout
        self.path = view_path(name)
        self.server: asyncio.Server | None = None
        self.address: tuple[str, int] | None = None
        self.relays: set[Relay] = set()
        self.idle = asyncio.Event()  # set while no connection is open (a drain waits on it)
        self.idle.set()
        self.counts = Counts()
        self.rng = random.Random()
        self.reuse_port = False
        self._numbers = 0

    # ------------------------------------------------------------ listening

    async def start(self) -> tuple[str, int]:
        """Bind and listen (OSError when the address is taken); the bound address."""
        loop = asyncio.get_running_loop()
        host, port = self.listen
        self.server = await loop.create_server(
            self._accept,
            host,
            port,
            backlog=1024,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
        )
        sockname = self.server.sockets[0].getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))
        return self.address

    async def stop(self, close_connections: bool = True) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()
        if close_connections:
            for relay in list(self.relays):
                relay.close()
        if server is not None:
            await server.wait_closed()

    @property
    def listening(self) -> bool:
        return self.server is not None

    def bytes(self) -> tuple[int, int]:
        """Bytes relayed (client → upstream, upstream → client) since the proxy was added."""
        relays = list(self.relays)  # a copy: read from the admin thread too
        c = self.counts
        return (
            c.bytes_up + sum(r.up.bytes for r in relays),
            c.bytes_down + sum(r.down.bytes for r in relays),
        )

    # ------------------------------------------------------------ connections

    def _accept(self) -> asyncio.Protocol:
        self._numbers += 1
        return Relay(self, self._numbers).client

    def opened(self, relay: Relay) -> None:
        """The client's connection is made (its `Side.connection_made`)."""
        self.counts.accepted += 1
        self.relays.add(relay)
        self.idle.clear()
        self._start(relay)

    def _start(self, relay: Relay) -> None:
        decision = self._decide(relay)
        plan, faults = self._plan(relay, decision)
        if plan.refuse:
            self.counts.refused += 1
            relay.reset()
            return
        if not plan.half_open:
            host, port = self.upstream
            relay.connect(host, port, self.connect_timeout, self._connect_failed)
        if faults:
            relay.apply(plan, faults)

    def _connect_failed(self) -> None:
        self.counts.connect_failed += 1

    def redecide(self) -> None:
        """What is in force changed: decide every open connection again and apply the plan
        of those whose faults changed."""
        for relay in list(self.relays):
            if relay.closed:
                continue
            plan, faults = self._plan(relay, self._decide(relay))
            if faults != relay.faults:
                relay.apply(plan, faults)

    def forget(self, relay: Relay) -> None:
        if relay in self.relays:
            self.relays.discard(relay)
            self.counts.bytes_up += relay.up.bytes
            self.counts.bytes_down += relay.down.bytes
            if not self.relays:
                self.idle.set()

    def _decide(self, relay: Relay) -> Decision | None:
        return self.engine.decide(ConnectionView(self.path, relay.peer))

    def _plan(self, relay: Relay, d: Decision | None) -> tuple[Plan, tuple[object, ...]]:
        """The decision's TCP faults as a plan; one `FaultInjected` per fault that is new to
        the connection (a re-decision that keeps a fault reports it once)."""
        plan = Plan()
        if d is None:
            return plan, ()
        faults = tuple(f for f in d.faults if isinstance(f, TcpFault))
        if d.seed is not None:
            relay.rng = random.Random(d.seed)
            relay.up.rng = relay.down.rng = relay.rng
        before = relay.faults
        now = self.engine.clock.wall()
        for f in faults:
            outcome = f.shape(plan)
            if any(f is g for g in before):
                continue
            self.bus.emit(
                FaultInjected(
                    now,
                    relay.id,
                    TCP_METHOD,
                    self.path,
                    d.scenario,
                    d.phase,
                    d.rule_of(f),
                    f.name,
                    outcome,
                )
            )
        return plan, faults
