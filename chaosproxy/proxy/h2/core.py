"""The per-stream path of HTTP/2: decide, apply faults, forward — as `downstream/core.py` does
per HTTP/1.1 request, with the same engine, guardrails, header faults and events.

Each stream is one request: it is counted in flight, decided on its own request view
(`:method`, `:path`, headers with `:authority` as `host`, the client's address), its faults run
on an `H2Exchange`, and its end is one `RequestDone` (protocol `h2`), so stats, metrics and the
journal count HTTP/2 and gRPC requests like the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

from chaosproxy.common.errors import UpstreamError
from chaosproxy.common.events import RequestDone
from chaosproxy.faults.base import Fault
from chaosproxy.proxy.downstream.core import ProxyCore, injected_mark
from chaosproxy.proxy.downstream.responses import error_json
from chaosproxy.proxy.h2.exchange import H2Exchange
from chaosproxy.proxy.h2.forward import Route, UpstreamStreamReset
from chaosproxy.proxy.h2.headers import split_pseudo
from chaosproxy.proxy.h2.server import H2ServerConnection
from chaosproxy.proxy.h2.stream import Stream

log = logging.getLogger("chaosproxy.proxy")

_UPSTREAM_STATUS = {"refused": 502, "reset": 502, "protocol": 502, "timeout": 504}


class H2Core:
    """Answers HTTP/2 streams with the HTTP/1.1 path's collaborators (`ProxyCore`)."""

    def __init__(self, core: ProxyCore, route: Route) -> None:
        self.core = core
        self.route = route
        self.clock = core.clock
        self.rng = core.rng
        self.bus = core.bus
        self.upstream_url = str(route.h2.url)

    async def handle_stream(self, conn: H2ServerConnection, s: Stream) -> None:
        core = self.core
        t0 = self.clock.monotonic()
        pseudo, raw = split_pseudo(s.head.result())
        rid = ""
        for k, v in raw:
            if k == b"x-request-id":
                rid = v.decode("latin-1")
                break
        ex = H2Exchange(self, conn, s, pseudo, raw, rid or core.ids.next(), t0)
        core.load.started()
        try:
            refusal = _refusal(ex)
            if refusal is not None:
                status, details = refusal
                await ex.respond(
                    status,
                    error_json(status, ex.request_id, details),
                    [("content-type", "application/json")],
                )
                return
            faults: tuple[Fault, ...] | None = None
            if core.engine.active:
                decision = core.engine.decide(ex)
                if decision is not None:
                    ex.decision = decision
                    faults = decision.faults
                    if decision.seed is not None:
                        ex.rng = random.Random(decision.seed)
            if core.request_faults is not None and faults is None:
                faults = core.request_faults(ex)  # type: ignore[arg-type]
            if faults and self._admit(ex, faults):
                await _run_chain(faults, ex, ex.proceed_upstream)
            else:
                await ex.proceed_upstream()
            if not ex.head_sent and not ex.finished:
                await ex.respond(
                    502,
                    error_json(502, ex.request_id, "no response was produced"),
                    [("content-type", "application/json")],
                )
        except UpstreamError as e:
            await self._upstream_failed(ex, e)
        except ConnectionError:
            ex.close()  # the client reset the stream or went away
        except asyncio.CancelledError:
            ex.close()
            raise
        except Exception:
            log.exception(
                "internal error [%s] %s %s (HTTP/2)",
                ex.request_id,
                ex.method,
                ex.target,
                extra={"request_id": ex.request_id},
            )
            if ex.head_sent or ex.finished:
                ex.close()
            else:
                await ex.respond(
                    500,
                    error_json(500, ex.request_id, "chaosproxy failed to handle the request"),
                    [("content-type", "application/json")],
                )
        finally:
            core.load.finished()
            if ex.finish_callbacks is not None:
                ex.run_finish(ex.request_id)
            self._done(ex)

    def _admit(self, ex: H2Exchange, faults: tuple[Fault, ...]) -> bool:
        guard = self.core.guardrails
        if guard is not None:
            if not guard.admit():
                return False
            ex.on_finish(guard.release)
        if self.core.options.mark_injected:
            ex.mark = injected_mark(ex.decision, faults)
        return True

    async def _upstream_failed(self, ex: H2Exchange, e: UpstreamError) -> None:
        if not e.injected:
            ex.upstream_error = e.reason
        log.log(
            logging.DEBUG if e.injected else logging.WARNING,
            "upstream %s%s [%s] %s %s (HTTP/2): %s",
            e.reason,
            " (injected)" if e.injected else "",
            ex.request_id,
            ex.method,
            ex.target,
            e.details,
            extra={"request_id": ex.request_id},
        )
        if ex.finished or ex.client_gone:
            return
        if isinstance(e, UpstreamStreamReset):
            ex.fail(e.code)  # the upstream's RST_STREAM, passed on
            return
        if ex.head_sent:
            ex.close()
            return
        status = _UPSTREAM_STATUS.get(e.reason, 502)
        with contextlib.suppress(ConnectionError):
            await ex.respond(
                status,
                error_json(status, ex.request_id, e.details),
                [("content-type", "application/json")],
            )

    def _done(self, ex: H2Exchange) -> None:
        core = self.core
        h = core.options.client_id_header
        status = ex.response_status or 0
        duration = self.clock.monotonic() - ex.t0
        if core.options.access_log:
            logging.getLogger("chaosproxy.access").info(
                "%s %s %s %d %.1fms [%s] h2",
                ex.client_ip,
                ex.method,
                ex.target,
                status,
                duration * 1000,
                ex.request_id,
                extra={"request_id": ex.request_id},
            )
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
                run=ex.header("x-chaos-run") or "",
                cohort=core.engine.label(ex),
                protocol="h2",
            )
        )


def _refusal(ex: H2Exchange) -> tuple[int, str] | None:
    """What the proxy answers itself: CONNECT (no tunnels through it) and targets that are
    not paths (`OPTIONS *` aside, which has nothing to forward either)."""
    if ex.method == "CONNECT":
        return 405, "CONNECT is not proxied: chaosproxy forwards to its upstream only"
    if not ex.target.startswith("/"):
        return 400, "the request target must be a path such as /api/items"
    return None


async def _run_chain(
    faults: tuple[Fault, ...], ex: H2Exchange, forward: Callable[[], Awaitable[None]]
) -> None:
    """Apply faults outermost first; the innermost step goes upstream."""

    def step(i: int) -> Callable[[], Awaitable[None]]:
        if i == len(faults):
            return forward

        async def run() -> None:
            if not ex.finished:
                await faults[i].apply(ex, step(i + 1))

        return run

    await step(0)()
