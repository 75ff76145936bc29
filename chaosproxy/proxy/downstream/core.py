"""The per-request path: decide, apply faults, forward; the listener (listener.py) calls it.

A request the engine leaves alone (and nothing else can touch) is relayed by callbacks
(`relay`, relay.py); the others are awaited through `handle`.

`ProxyCore` is configured once, by its constructor: `ProxyOptions` (frozen, built in one place
by the runtime) and the collaborators it calls (upstream, engine, guardrails, header faults)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import cast

from chaosproxy.common.clock import SYSTEM_CLOCK, Clock
from chaosproxy.common.errors import UpstreamError
from chaosproxy.common.events import EventBus, RequestDone
from chaosproxy.common.ids import RequestIds
from chaosproxy.common.wake import Deadlines
from chaosproxy.engine.core import Decision, Engine
from chaosproxy.engine.guardrails import Guardrails
from chaosproxy.engine.load_signals import LoadSignals
from chaosproxy.faults.base import Fault
from chaosproxy.proxy.downstream.delayed import delay_then_relay
from chaosproxy.proxy.downstream.exchange import ProxyExchange
from chaosproxy.proxy.downstream.exchange_base import BaseExchange, injected_mark, run_chain
from chaosproxy.proxy.downstream.listener import ClientConnection
from chaosproxy.proxy.downstream.relay import UNSENT, Relay, SendNow, can_relay, stale_error
from chaosproxy.proxy.downstream.request import RequestBody, RequestError, RequestHead, origin_form
from chaosproxy.proxy.downstream.websocket import relay_upgrade
from chaosproxy.proxy.upstream.client import IDEMPOTENT
from chaosproxy.proxy.upstream.forward import Forwarder
from chaosproxy.proxy.upstream.interface import Stale, Upstream

log = logging.getLogger("chaosproxy.proxy")
access_log = logging.getLogger("chaosproxy.access")

_UPSTREAM_STATUS = {"refused": 502, "reset": 502, "protocol": 502, "timeout": 504}
NO_RESPONSE = "no response was produced"


# Request headers never forwarded whatever the options: 100-continue is answered here.
ALWAYS_DROPPED = frozenset({"expect"})

RequestFaults = Callable[[ProxyExchange], tuple[Fault, ...] | None]


@dataclass(frozen=True)
class ProxyOptions:
    """How the per-request path behaves (flags of `chaosproxy run`)."""

    forwarded_headers: bool = True  # add X-Forwarded-For/-Proto/-Host (and drop the client's)
    rewrite_host: bool = False  # Host becomes the upstream's, not the client's
    scheme: str = "http"  # what the client spoke: X-Forwarded-Proto
    access_log: bool = False
    mark_injected: bool = False  # `X-Chaos-Injected` on responses that carried a fault
    client_id_header: str | None = None  # names the client in events; else its address
    # End-to-end request headers never forwarded, beside `ALWAYS_DROPPED` (any case).
    drop_request_headers: frozenset[str] = frozenset()


class ProxyCore:
    """Everything the per-request path needs, resolved once at startup."""

    def __init__(
        self,
        upstream: Upstream,
        engine: Engine,
        options: ProxyOptions = ProxyOptions(),
        bus: EventBus | None = None,
        load: LoadSignals | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        guardrails: Guardrails | None = None,
        request_faults: RequestFaults | None = None,
    ) -> None:
        self.upstream = upstream
        self.engine = engine
        self.bus = bus or engine.bus
        self.load = load or LoadSignals(clock)
        self.clock = clock
        self.rng = rng or random.Random()
        self.options = options
        self.forwarder = Forwarder(
            upstream,
            drop=ALWAYS_DROPPED | options.drop_request_headers,
            forwarded_headers=options.forwarded_headers,
            rewrite_host=options.rewrite_host,
            scheme=options.scheme,
        )
        self.ids = RequestIds()
        # Per-request faults chosen by the request itself (header faults): the faults to
        # apply, or None. Only when enabled (--allow-header-faults).
        self.request_faults = request_faults
        # Caps concurrent faulted requests (max_active_faults).
        self.guardrails = guardrails
        # Requests relayed by callbacks go out through this (the native client's `send_now`);
        # None when the upstream client has none.
        self.send_now: SendNow | None = getattr(upstream, "send_now", None)
        # Requests whose one fault is a delay, waiting for their deadline (delayed.py).
        self.deadlines = Deadlines()

    def relay(self, head: RequestHead, body: RequestBody | None, conn: ClientConnection) -> bool:
        """Relay the request by callbacks (relay.py) when nothing can touch it: the engine
        decided no rule applies to this very request (the decision is kept for `handle`
        otherwise: one per request), no request-chosen faults are enabled, it carries no body
        and an upstream connection is idle. True when relayed: it ends with `conn.answered`."""
        if body is not None or self.send_now is None or head.decided or not can_relay(head):
            return False
        head.decided = True
        if self.engine.active:
            decision = head.decision = self.engine.decide(head)
            if decision is not None:
                return delay_then_relay(self, head, conn, decision, self._relayed)
        if self.request_faults is not None or conn.eof:
            return False
        rid = head.request_id = head.request_id or self.ids.next()
        relay = Relay(self, head, conn, rid, head.t0, self._relayed)
        if not relay.send(head.t0):  # taken up as it arrived: the same instant
            return False
        conn.relaying(relay)
        return True

    def _relayed(self, relay: Relay) -> None:
        """A relayed request ended: a stale connection sends it again through `handle` (and so
        does a delayed one that found no idle connection), an upstream failure gets the proxy's
        error answer; then it is done."""
        err = relay.error
        head, conn = relay.req, cast(ClientConnection, relay.conn)  # the one `relay` was given
        if err is UNSENT or (isinstance(err, Stale) and head.method in IDEMPOTENT):
            relay.hand_back()
            conn.send_again(head)  # on a fresh connection: `request` knows how
            return
        relay.release()
        if err is not None:
            e = err if isinstance(err, UpstreamError) else stale_error()
            upstream_failed(relay, e)
            relay.answer_error(_UPSTREAM_STATUS.get(e.reason, 502), e.details)
        h = self.options.client_id_header
        self.done(relay, (h and head.header(h.lower())) or head.client_ip, head.run)
        conn.answered(relay.complete and head.keep_alive)

    async def handle(
        self, head: RequestHead, body: RequestBody | None, conn: ClientConnection
    ) -> bool:
        """Answer one request read by the listener (counted in flight since its head was
        parsed); True when the connection may carry another request after it."""
        rid = head.request_id or self.ids.next()
        refusal = _refusal(head)  # before the exchange: it may rewrite the target
        if body is not None and body.error is not None:  # broke off before it was handled
            refusal = body.error.status, body.error.details, []
        elif body is not None and head.upgrade and refusal is None:
            # The parser switches right after the head (the body would be read as the new
            # protocol's bytes): forwarding the head alone leaves the upstream waiting for a
            # body that never comes. Refused before anything goes upstream.
            refusal = 400, "an upgrade request cannot carry a body", []
        ex = ProxyExchange(self, head, body, conn, rid)
        forward = partial(relay_upgrade, ex) if head.upgrade else ex.proceed_upstream
        try:
            if refusal is not None:  # answered here, and the connection closes
                status, details, extra = refusal
                head.keep_alive = False
                if status == 200:  # OPTIONS *: the proxy itself answers
                    await ex.respond(200, b"", [*extra, _CLOSE])
                else:
                    await ex.respond_error(status, details, *extra, _CLOSE)
                return False
            # The fast checks stay inline: a request no rule touches makes no call for them.
            waited = head.waited
            if waited is not None:  # a delayed relay waited its delay (delayed.py): forward it
                ex.decision, ex.injected, ex.mark = waited.decision, True, waited.mark
                ex.t0 = head.t0  # its duration counts its delay, from its arrival
                ex.on_finish(waited.release)
                decision = None
            elif head.decided:  # by `relay`, which then left the request to this path
                decision = head.decision
            else:
                decision = self.engine.decide(ex) if self.engine.active else None
            faults = adopt(ex, decision) if decision is not None else None
            if faults is None and self.request_faults is not None and waited is None:
                faults = self.request_faults(ex)
            if faults and conn.eof:
                ex.close()  # the client finished sending and may be gone: no fault waits for it
            elif faults and self.admit(ex, faults):
                await run_chain(faults, ex, partial(_upstream, conn, forward))
            else:
                conn.upstream_started = True  # from here a client's EOF waits for the answer
                await forward()
            if not ex.head_sent and not ex.finished:
                await ex.respond_error(502, NO_RESPONSE)
        except UpstreamError as e:
            if body is not None and body.error is not None:
                await _client_failed(ex, body.error)
            else:
                upstream_failed(ex, e)
                if not ex.finished:
                    await answer_upstream_failure(ex, e)
        except ConnectionError:
            # The client went away while we answered: nothing left to tell it.
            log.debug("client disconnected [%s]", rid, extra={"request_id": rid})
            ex.close()
        except asyncio.CancelledError:
            ex.close()
            raise
        except Exception:
            if body is not None and body.error is not None:
                await _client_failed(ex, body.error)
            else:
                await internal_error(ex)
        finally:
            h = self.options.client_id_header
            self.done(ex, (h and head.header(h.lower())) or ex.client_ip, head.run)
        return ex.complete

    def admit(self, ex: BaseExchange, faults: tuple[Fault, ...]) -> bool:
        """Guardrail slot (released when the exchange ends) and the injected-mark header."""
        guard = self.guardrails
        if guard is not None:
            if not guard.admit():
                return False
            ex.on_finish(guard.release)
        if self.options.mark_injected:
            ex.mark = injected_mark(ex.decision, faults)
        return True

    def done(
        self,
        ex: BaseExchange | Relay,
        client: str,
        run: str,
        protocol: str = "http/1.1",
        grpc_status: int | None = None,
    ) -> None:
        """The request ended (`client`: who sent it, as events name it; `run`: its
        experiment run; `grpc_status`: a gRPC call's status): it leaves the load count, its
        finish callbacks run, its `RequestDone` goes out (and its access log line)."""
        self.load.finished()
        if ex.finish_callbacks is not None:
            ex.run_finish(ex.request_id)
        duration = self.clock.monotonic() - ex.t0
        status = ex.response_status or 0
        if self.options.access_log:
            access_log.info(
                "%s %s %s %d %.1fms [%s]%s",
                ex.client_ip,
                ex.method,
                ex.target,
                status,
                duration * 1000,
                ex.request_id,
                "" if protocol == "http/1.1" else f" {protocol}",
                extra={"request_id": ex.request_id},
            )
        # Positional, in the fields' order: a call with fourteen keywords costs twice as much,
        # once per request.
        self.bus.emit(
            RequestDone(
                self.clock.wall(),
                ex.method,
                status,
                duration,
                ex.upstream_duration,
                ex.upstream_error,
                ex.injected,
                client,
                ex.retry_after,
                run,
                self.engine.label(ex),
                protocol,
                grpc_status,
                ex.request_id,
            )
        )


_ALLOW = ("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
_CLOSE = ("Connection", "close")


def _refusal(head: RequestHead) -> tuple[int, str, list[tuple[str, str]]] | None:
    """What the proxy answers itself instead of forwarding, or None. The request target never
    chooses where the proxy connects: only a path (origin-form) goes to the configured
    upstream; an absolute-form target is rewritten to its path; CONNECT, `OPTIONS *`, other
    forms and other HTTP versions are answered here."""
    if head.version not in ("1.1", "1.0"):
        return 505, f"HTTP/{head.version[:8]} is not supported: send HTTP/1.1", []
    if head.method == "CONNECT":
        return 405, "CONNECT is not proxied: chaosproxy forwards to its upstream only", [_ALLOW]
    target = head.target
    if target == "*":
        if head.method == "OPTIONS":
            return 200, "", [_ALLOW]
        return 400, "'*' is a request target for OPTIONS only", []
    if not target.startswith("/"):
        scheme, sep, rest = target.partition("://")
        if sep and scheme.lower() in ("http", "https"):
            head.target = origin_form(rest)  # absolute-form: its path and query only
        else:
            return 400, "the request target must be a path such as /api/items", []
    return None


def adopt(ex: BaseExchange, decision: Decision) -> tuple[Fault, ...]:
    """The engine decided: its faults act on `ex`, credited to `decision`; their internal
    randomness (delay distributions) replays with the decision's seed."""
    ex.decision = decision
    if decision.seed is not None:
        ex.rng = random.Random(decision.seed)
    return decision.faults


def upstream_failed(ex: BaseExchange | Relay, e: UpstreamError, via: str = "") -> None:
    """Keep and log an upstream failure (`via`: how the client spoke, for the log line)."""
    if not e.injected:  # an injected one is counted as the fault it is, not as trouble
        ex.upstream_error = e.reason
    log.log(
        logging.DEBUG if e.injected else logging.WARNING,
        "upstream %s%s [%s] %s %s%s: %s",
        e.reason,
        " (injected)" if e.injected else "",
        ex.request_id,
        ex.method,
        ex.target,
        via,
        e.details,
        extra={"request_id": ex.request_id},
    )


async def answer_upstream_failure(ex: BaseExchange, e: UpstreamError) -> None:
    """An unfinished exchange after an upstream failure: its status (502, or 504 for a
    timeout) before a head went out, a cut-off answer after."""
    if ex.head_sent:
        ex.close()
        return
    await ex.respond_error(_UPSTREAM_STATUS.get(e.reason, 502), e.details)


async def internal_error(ex: BaseExchange, via: str = "") -> None:
    """A bug of the proxy's own (called while handling the exception): logged with its trace,
    the client gets a 500 without it, or a cut-off answer when one already began."""
    log.exception(
        "internal error [%s] %s %s%s",
        ex.request_id,
        ex.method,
        ex.target,
        via,
        extra={"request_id": ex.request_id},
    )
    if ex.finished or ex.head_sent:
        ex.close()
        return
    await ex.respond_error(500, "chaosproxy failed to handle the request")


async def _upstream(conn: ClientConnection, forward: Callable[[], Awaitable[None]]) -> None:
    """The innermost step of an HTTP/1.1 fault chain."""
    conn.upstream_started = True  # past the faults' waits: a client's EOF waits for it
    await forward()


async def _client_failed(ex: ProxyExchange, err: RequestError) -> None:
    """The client's body broke off or stalled (the listener failed it): its status, not an
    upstream failure, whatever the upstream client made of the body's error."""
    ex.upstream_error = None
    ex.head.keep_alive = False
    if ex.finished or ex.head_sent:
        ex.close()
        return
    await ex.respond_error(err.status, err.details, _CLOSE)
