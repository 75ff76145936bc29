"""The delayed relay: a request whose one fault is a delay before forwarding, relayed by
callbacks once its time came.

The commonest fault, `latency` on the request side, needs nothing of the exchange but the wait:
no hook on the answer, no byte of its own. So when the engine's decision for a body-less request
is that alone, the core (`ProxyCore.relay`) records the fault as the awaiting path does (its
`FaultInjected`, its guardrail slot, its `X-Chaos-Injected` mark) and a timer on the loop takes
the request up at its deadline: no task, no exchange, no fault chain, and a wave of delayed
requests ending together costs one callback each. The delay counts
from the request's arrival and never ends before it (the loop's timers may end up to a
millisecond early: the rest is waited for iteration by iteration, as `common.clock.sleep_until`
does). Then the request is relayed (relay.py) as an untouched one is, and its answer carries
the mark.

A client gone during the wait ends the request as a cancelled delay does (connection_lost
cancels the relay, and the timer with it). When no upstream connection is idle at the deadline,
or the reused one turns out stale, the request goes through the awaiting path with its delay
already waited (`RequestHead.waited`): `handle` forwards it without applying its faults again.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import time
from collections.abc import Callable
from typing import Protocol

from chaosproxy.common.clock import SYSTEM_CLOCK
from chaosproxy.common.events import EventBus, FaultInjected
from chaosproxy.common.ids import RequestIds
from chaosproxy.common.wake import WakeAt
from chaosproxy.engine.decide import Decision
from chaosproxy.engine.guardrails import Guardrails
from chaosproxy.faults.latency import LatencyFault
from chaosproxy.proxy.downstream.exchange_base import injected_mark
from chaosproxy.proxy.downstream.listener import ClientConnection
from chaosproxy.proxy.downstream.relay import UNSENT, Relay, RelaySite
from chaosproxy.proxy.downstream.request import RequestHead


class DelaySite(RelaySite, Protocol):
    """What a delayed relay reads of the proxy (the `ProxyCore`)."""

    @property
    def rng(self) -> random.Random: ...
    @property
    def bus(self) -> EventBus: ...
    @property
    def ids(self) -> RequestIds: ...
    @property
    def guardrails(self) -> Guardrails | None: ...
    @property
    def deadlines(self) -> Deadlines: ...
    @property
    def options(self) -> MarkOption: ...


class MarkOption(Protocol):
    @property
    def mark_injected(self) -> bool: ...


def delay_then_relay(
    core: DelaySite,
    head: RequestHead,
    conn: ClientConnection,
    decision: Decision,
    on_end: Callable[[Relay], None],
) -> bool:
    """Take up a request whose one fault is a delay before forwarding: recorded now, waited
    for by a timer, then relayed. False: the awaiting path applies the decision (another
    fault, a client that finished sending, a test's clock, a guardrail that would refuse)."""
    fault = request_delay(decision)
    if fault is None or conn.eof or core.clock is not SYSTEM_CLOCK:
        return False
    guard = core.guardrails
    if guard is not None:
        if guard.limit is not None and guard.active >= guard.limit:
            return False  # `handle` refuses it the fault, and counts that once
        guard.admit()
    rid = head.request_id = head.request_id or core.ids.next()
    mark = injected_mark(decision, decision.faults) if core.options.mark_injected else None
    relay = DelayedRelay(core, head, conn, rid, on_end, mark, decision, guard, core.deadlines)
    d = fault.sample(core.rng if decision.seed is None else random.Random(decision.seed))
    core.bus.emit(
        FaultInjected(
            t=core.clock.wall(),
            request_id=rid,
            method=head.method,
            path=head.path,
            scenario=decision.scenario,
            phase=decision.phase,
            rule=decision.rule_of(fault),
            fault=fault.name,
            outcome=f"delay={d:.3f}",
            cohort=decision.cohort,
            protocol="http/1.1",
        )
    )
    relay.wait(head.t0 + d)  # from its arrival, as the awaiting path counts it
    return True


def request_delay(decision: Decision) -> LatencyFault | None:
    """The decision's one fault when it is a delay before forwarding, else None."""
    faults = decision.faults
    if len(faults) == 1:
        f = faults[0]
        if type(f) is LatencyFault and f.at == "request":
            return f
    return None


class DelayedRelay(Relay):
    """A relay that waits for its deadline (`time.monotonic()`, kept by `Deadlines`) before
    it sends."""

    __slots__ = ("_deadlines", "_guard", "decision", "waiting")

    injected = True  # its delay was injected (and recorded before the wait)

    def __init__(
        self,
        core: RelaySite,
        head: RequestHead,
        conn: ClientConnection,
        request_id: str,
        on_end: Callable[[Relay], None],
        mark: str | None,
        decision: Decision,
        guard: Guardrails | None,
        deadlines: Deadlines,
    ) -> None:
        super().__init__(core, head, conn, request_id, head.t0, on_end, mark)
        self.decision = decision
        self._guard = guard  # it holds a slot of these guardrails until it ends
        self._deadlines = deadlines
        self.waiting = False

    def wait(self, deadline: float) -> None:
        """Send when `deadline` comes; the connection is busy with this request meanwhile."""
        self.conn.relaying(self, started=False)  # a client's EOF meanwhile ends the request
        self.waiting = True
        self._deadlines.add(deadline, self)

    def due(self) -> None:
        """Its deadline came (`Deadlines`): the request goes upstream now."""
        self.waiting = False
        self.conn.upstream_started = True  # past the wait: a client's EOF waits for the answer
        if not self.send(self.core.clock.monotonic()):
            self.error = UNSENT
            self._finish()

    def release(self) -> None:
        """The request ended: its guardrail slot is free again (once)."""
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.release()

    def cancel(self) -> None:
        if self.waiting:
            self.waiting = False
            self._deadlines.forget()
        super().cancel()


# Entries of relays gone before their deadline kept until they come due, unless they outnumber
# the waiting ones (then the heap is rebuilt without them): clients that give up during
# hour-long delays do not hold memory for the hour.
_GONE_KEPT = 64


class Deadlines:
    """The delayed relays of one proxy by deadline, woken by one `WakeAt` set for the earliest:
    never before their deadline and tens of microseconds after it (a loop timer alone ends up
    to 0.5 ms late on uvloop, which every delay of a wave would carry), and a wave that comes
    due together is sent in one callback."""

    __slots__ = ("_at", "_gone", "_heap", "_seq", "_wake")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, DelayedRelay]] = []
        self._seq = 0  # arrival order, for equal deadlines
        self._gone = 0  # entries of relays cancelled before their deadline
        self._at = math.inf  # the deadline the wake-up is set for
        self._wake: WakeAt | None = None  # made on first use, on the running loop

    def __len__(self) -> int:
        return len(self._heap) - self._gone

    def add(self, deadline: float, relay: DelayedRelay) -> None:
        heapq.heappush(self._heap, (deadline, self._seq, relay))
        self._seq += 1
        if deadline < self._at:
            self._arm(deadline)

    def forget(self) -> None:
        """A relay was cancelled while it waited."""
        self._gone += 1
        heap = self._heap
        if self._gone > _GONE_KEPT and self._gone * 2 > len(heap):
            heap[:] = [e for e in heap if e[2].waiting]
            heapq.heapify(heap)
            self._gone = 0

    def close(self) -> None:
        """The proxy stopped (its connections are closed, and their relays with them)."""
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.close()
        self._at = math.inf

    def _arm(self, deadline: float) -> None:
        wake = self._wake
        if wake is None:
            wake = self._wake = WakeAt(asyncio.get_running_loop(), self._look)
        self._at = deadline
        wake.set(deadline)

    def _look(self) -> None:
        self._at = math.inf
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= time.monotonic():
            relay = pop(heap)[2]
            if relay.waiting:
                relay.due()
            else:
                self._gone -= 1
        if heap and heap[0][0] < self._at:
            self._arm(heap[0][0])
