"""The delayed relay: a request whose one fault is a delay before forwarding, relayed by
callbacks once its time came.

The commonest fault, `latency` on the request side, needs nothing of the exchange but the wait:
no hook on the answer, no byte of its own. So when the engine's decision for a body-less request
is that alone, the core (`ProxyCore.relay`) records the fault as the awaiting path does (its
`FaultInjected`, its guardrail slot, its `X-Chaos-Injected` mark) and the proxy's heap of
deadlines (`common.wake.Deadlines`) takes the request up at its deadline: no task, no exchange,
no fault chain, and a wave of delayed requests ending together is sent in one callback. The
delay counts from the request's arrival and never ends before it. Then the request is relayed
(relay.py) as an untouched one is, and its answer carries the mark.

A client gone during the wait ends the request as a cancelled delay does (connection_lost
cancels the relay, and its wait with it). When no upstream connection is idle at the deadline,
or the reused one turns out stale, the request goes through the awaiting path with its delay
already waited (`RequestHead.waited`): `handle` forwards it without applying its faults again.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Protocol

from chaosproxy.common.clock import SYSTEM_CLOCK
from chaosproxy.common.events import FaultInjected
from chaosproxy.common.ids import RequestIds
from chaosproxy.engine.decide import Decision
from chaosproxy.engine.guardrails import Guardrails
from chaosproxy.faults.latency import LatencyFault
from chaosproxy.proxy.downstream.exchange_base import Site, injected_mark
from chaosproxy.proxy.downstream.relay import UNSENT, Relay, RelayConn, RelaySite
from chaosproxy.proxy.downstream.request import RequestHead


class DelaySite(RelaySite, Site, Protocol):
    """What a delayed relay reads of the proxy (the `ProxyCore`): what a relay and an exchange
    read, and these."""

    @property
    def ids(self) -> RequestIds: ...
    @property
    def guardrails(self) -> Guardrails | None: ...
    @property
    def options(self) -> MarkOption: ...


class MarkOption(Protocol):
    @property
    def mark_injected(self) -> bool: ...


log = logging.getLogger("chaosproxy.proxy")


def delay_then_relay(
    core: DelaySite,
    head: RequestHead,
    conn: RelayConn,
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
        if guard.full:
            return False  # `handle` refuses it the fault, and counts that once
        guard.admit()  # the relay holds this slot until it ends
    rid = head.request_id = head.request_id or core.ids.next()
    mark = injected_mark(decision, decision.faults) if core.options.mark_injected else None
    relay = DelayedRelay(core, head, conn, rid, on_end, mark, decision)
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
        core: DelaySite,
        head: RequestHead,
        conn: RelayConn,
        request_id: str,
        on_end: Callable[[Relay], None],
        mark: str | None,
        decision: Decision,
    ) -> None:
        super().__init__(core, head, conn, request_id, head.t0, on_end, mark)
        self.decision = decision
        self._guard = core.guardrails  # it holds a slot of these (admitted) until it ends
        self._deadlines = core.deadlines
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
        try:
            sent = self.send(self.core.clock.monotonic())
        except Exception:  # a bug of ours: logged, the client's connection closed (it ends)
            log.exception("a delayed request could not be sent [%s]", self.request_id)
            self.conn.close()
            return
        if not sent:
            self.error = UNSENT
            self._finish()

    def hand_back(self) -> None:
        """Its wait is over: `handle` only forwards it, and releases its slot when it ends (a
        closed client's request ends here)."""
        if self.conn.closed:
            self.release()
        else:
            self.req.waited = self

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
