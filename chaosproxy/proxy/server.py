"""The proxy listener: one aiohttp low-level handler per request, no router, no middleware."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from chaosproxy._clock import SYSTEM_CLOCK, Clock
from chaosproxy.engine.core import Decision, Engine
from chaosproxy.engine.events import EventBus, RequestDone
from chaosproxy.engine.guardrails import Guardrails
from chaosproxy.engine.load import LoadSignals
from chaosproxy.errors import UpstreamError
from chaosproxy.faults.base import Fault
from chaosproxy.proxy.exchange import ProxyExchange, error_json
from chaosproxy.proxy.headers import HOP_BY_HOP
from chaosproxy.proxy.upstream import Upstream
from chaosproxy.proxy.websocket import is_upgrade

log = logging.getLogger("chaosproxy.proxy")
access_log = logging.getLogger("chaosproxy.access")

_UPSTREAM_STATUS = {"refused": 502, "reset": 502, "protocol": 502, "timeout": 504}


@dataclass(frozen=True)
class ProxyOptions:
    forwarded_headers: bool = True
    rewrite_host: bool = False
    scheme: str = "http"
    access_log: bool = False


class RequestIds:
    """Cheap unique ids: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._n = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._n):08x}"


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
    ) -> None:
        self.upstream = upstream
        self.engine = engine
        self.bus = bus or engine.bus
        self.load = load or LoadSignals(clock)
        self.clock = clock
        self.rng = rng or random.Random()
        self.options = options
        self.forwarded_headers = options.forwarded_headers
        self.rewrite_host = options.rewrite_host
        self.scheme = options.scheme
        self.drop_request_headers = frozenset({"expect"})
        self.ids = RequestIds()
        # Hook for per-request faults chosen by the request itself (header faults): it returns
        # the faults to apply, or None. Installed by the runtime only when enabled.
        self.request_faults: Callable[[ProxyExchange], tuple[Fault, ...] | None] | None = None
        # Caps concurrent faulted requests (max_active_faults); installed by the runtime.
        self.guardrails: Guardrails | None = None
        # Add `X-Chaos-Injected` to responses that carried a fault (--mark-injected).
        self.mark_injected = False
        # The request header naming the client (--client-id-header); else its address.
        self.client_id_header: str | None = None

    @property
    def drop_request_headers(self) -> frozenset[str]:
        """End-to-end request headers that are never forwarded (lower-case names)."""
        return self._drop

    @drop_request_headers.setter
    def drop_request_headers(self, names: frozenset[str]) -> None:
        self._drop = frozenset(n.lower() for n in names)
        skip = HOP_BY_HOP | self._drop
        if self.forwarded_headers:
            skip |= {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
        if self.rewrite_host:
            skip |= {"host"}
        # Computed once: the per-request header filter is one set lookup per header.
        self.request_skip: frozenset[str] = skip

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        rid = request.headers.get("X-Request-Id") or self.ids.next()
        ex = ProxyExchange(self, request, rid)
        forward = ex.proceed_websocket if is_upgrade(request) else ex.proceed_upstream
        load = self.load
        if not _claim_arrival(request):  # else counted when its head was read
            load.started()
        try:
            faults: tuple[Fault, ...] | None = None
            if self.engine.active:
                decision = self.engine.decide(ex)
                if decision is not None:
                    ex.decision = decision
                    faults = decision.faults
                    if decision.seed is not None:
                        # Fault-internal randomness (delay distributions) replays with the seed.
                        ex.rng = random.Random(decision.seed)
            if self.request_faults is not None and faults is None:
                faults = self.request_faults(ex)
            if faults and self._admit(ex, faults):
                await _run_chain(faults, ex, forward)
            else:
                await forward()
        except UpstreamError as e:
            await self._upstream_failed(ex, e)
        except ConnectionError:
            # The client went away while we answered: nothing left to tell it.
            log.debug("client disconnected [%s]", rid, extra={"request_id": rid})
            ex.close()
        except asyncio.CancelledError:
            ex.close()
            raise
        except Exception:
            log.exception(
                "internal error [%s] %s %s", rid, ex.method, ex.target, extra={"request_id": rid}
            )
            await self._internal_error(ex)
        finally:
            load.finished()
            if ex._finish_cbs:
                ex.run_finish_callbacks()
            self._done(ex)
        return ex.response or web.Response(status=ex.response_status or 502)

    def _admit(self, ex: ProxyExchange, faults: tuple[Fault, ...]) -> bool:
        """Guardrail slot (released when the exchange ends) and the injected-mark header."""
        guard = self.guardrails
        if guard is not None:
            if not guard.admit():
                return False
            ex.on_finish(guard.release)
        if self.mark_injected:
            ex.mark = injected_mark(ex.decision, faults)
        return True

    async def _upstream_failed(self, ex: ProxyExchange, e: UpstreamError) -> None:
        if not e.injected:  # an injected one is counted as the fault it is, not as trouble
            ex.upstream_error = e.reason
        log.log(
            logging.DEBUG if e.injected else logging.WARNING,
            "upstream %s%s [%s] %s %s: %s",
            e.reason,
            " (injected)" if e.injected else "",
            ex.request_id,
            ex.method,
            ex.target,
            e.details,
            extra={"request_id": ex.request_id},
        )
        if ex.finished:
            return
        if ex.response is not None and ex.response.prepared:
            ex.close()
            return
        status = _UPSTREAM_STATUS.get(e.reason, 502)
        await ex.respond(
            status,
            error_json(status, ex.request_id, e.details),
            [("Content-Type", "application/json")],
        )

    async def _internal_error(self, ex: ProxyExchange) -> None:
        if ex.finished or (ex.response is not None and ex.response.prepared):
            ex.close()
            return
        await ex.respond(
            500,
            error_json(500, ex.request_id, "chaosproxy failed to handle the request"),
            [("Content-Type", "application/json")],
        )

    def _done(self, ex: ProxyExchange) -> None:
        duration = self.clock.monotonic() - ex.t0
        status = ex.response_status or 0
        if self.options.access_log:
            access_log.info(
                "%s %s %s %d %.1fms [%s]",
                ex.client_ip,
                ex.method,
                ex.target,
                status,
                duration * 1000,
                ex.request_id,
                extra={"request_id": ex.request_id},
            )
        h = self.client_id_header
        self.bus.emit(
            RequestDone(
                t=self.clock.wall(),
                method=ex.method,
                status=status,
                duration=duration,
                upstream_duration=ex.upstream_duration,
                upstream_error=ex.upstream_error,
                injected=ex.injected,
                client=(h and ex.headers.get(h)) or ex.client_ip,
                retry_after=ex.retry_after,
                run=ex.headers.get("X-Chaos-Run", "")[:64],
            )
        )


def injected_mark(decision: Decision | None, faults: tuple[Fault, ...]) -> str:
    """`X-Chaos-Injected` value: the faults, then where they came from."""
    names = "+".join(f.name for f in faults)
    if decision is None:
        return f"{names}; source=header"
    d = decision
    return f"{names}; scenario={d.scenario or '-'}; phase={d.phase or '-'}; rule={d.rule}"


async def _run_chain(
    faults: tuple[Fault, ...], ex: ProxyExchange, forward: Callable[[], Awaitable[None]]
) -> None:
    """Apply faults outermost first; the innermost step (`forward`) goes upstream."""

    def step(i: int) -> Callable[[], Awaitable[None]]:
        if i == len(faults):
            return forward

        async def run() -> None:
            if not ex.finished:
                await faults[i].apply(ex, step(i + 1))

        return run

    await step(0)()


def _claim_arrival(request: web.BaseRequest) -> bool:
    """True when the connection already counted this request in flight as it was read."""
    proto = request.protocol
    if isinstance(proto, _ClientErrors) and proto.unclaimed > 0:
        proto.unclaimed -= 1
        return True
    return False


class _Arrivals(deque[Any]):
    """aiohttp's queue of parsed requests on one connection: each one appended is in flight
    from then on, though its handler may start later (pipelined behind another request, or
    behind a saturated loop). Relies on aiohttp appending every parsed request to
    `RequestHandler._messages` (3.10 to 3.14); tests/proxy/test_inflight.py fails if it stops."""

    __slots__ = ("_conn",)

    def __init__(self, conn: _ClientErrors) -> None:
        super().__init__()
        self._conn = conn

    def append(self, item: Any) -> None:
        super().append(item)
        conn = self._conn
        conn.unclaimed += 1
        conn.load.started()


class _ClientErrors(RequestHandler):
    """aiohttp's connection handler, answering requests it cannot parse (oversized headers,
    smuggling shapes, garbage) with the proxy's JSON error and a request id, logged in one line
    instead of a traceback: hostile or broken clients are expected. Anything else that reaches
    it escaped the handler: a JSON 500, and the traceback in the log.

    It also counts requests in flight from the moment they are parsed (`_Arrivals`); the
    handler claims each one, and the ones never claimed leave the count with the connection.
    """

    ids: RequestIds
    load: LoadSignals
    unclaimed = 0  # requests read on this connection whose handler has not begun

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._messages = _Arrivals(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        n, self.unclaimed = self.unclaimed, 0
        if n:
            self.load.abandoned(n)
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        rid = self.ids.next()
        if isinstance(exc, HttpProcessingError):
            reason = exc.message or message or type(exc).__name__
            details = str(reason).strip().splitlines()[0].split(": b'")[0][:200]
            log.warning(
                "rejected a malformed request from %s [%s]: %s",
                request.remote,
                rid,
                details,
                extra={"request_id": rid},
            )
        else:  # not the client's doing: an exception escaped the handler
            status, details = 500, "chaosproxy failed to handle the request"
            log.error("internal error [%s]", rid, exc_info=exc, extra={"request_id": rid})
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already under way")
        resp = web.Response(
            status=status,
            body=error_json(status, rid, details),
            content_type="application/json",
            headers={"X-Request-Id": rid},
        )
        resp.force_close()
        return resp


class _Server(web.Server):
    def __init__(self, core: ProxyCore) -> None:
        super().__init__(core.handle, handler_cancellation=True, access_log=None)
        self._ids = core.ids
        self._load = core.load

    def __call__(self) -> RequestHandler:
        handler = _ClientErrors(self, loop=self._loop, **self._kwargs)
        handler.ids = self._ids
        handler.load = self._load
        return handler


def make_server(core: ProxyCore) -> web.Server:
    return _Server(core)
