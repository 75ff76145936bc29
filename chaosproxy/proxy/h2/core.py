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

from chaosproxy.common.errors import UpstreamError
from chaosproxy.proxy.downstream.core import (
    NO_RESPONSE,
    ProxyCore,
    adopt,
    answer_upstream_failure,
    internal_error,
    upstream_failed,
)
from chaosproxy.proxy.downstream.exchange_base import run_chain
from chaosproxy.proxy.h2.deadline import within_deadline
from chaosproxy.proxy.h2.exchange import H2Exchange
from chaosproxy.proxy.h2.forward import Route, UpstreamStreamReset
from chaosproxy.proxy.h2.headers import split_pseudo
from chaosproxy.proxy.h2.limits import BodyWatch, header_refusal
from chaosproxy.proxy.h2.server import H2ServerConnection
from chaosproxy.proxy.h2.stream import CANCEL, Stream

log = logging.getLogger("chaosproxy.proxy")


class H2Core:
    """Answers HTTP/2 streams with the HTTP/1.1 path's collaborators (`ProxyCore`)."""

    def __init__(self, core: ProxyCore, route: Route) -> None:
        self.core = core
        self.route = route
        self.clock = core.clock
        self.rng = core.rng
        self.bus = core.bus
        self.deadlines = core.deadlines  # a stream's delays wait in the proxy's heap too
        self.upstream_url = str(route.h2.url)
        # HTTP/2 connections ended by a bound of `limits.py` (GOAWAY ENHANCE_YOUR_CALM)
        self.calmed: dict[str, int] = {}

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
        # --body-timeout on the request's DATA; not on gRPC calls (their deadline bounds them,
        # and a quiet client or bidi stream is how gRPC streams live: docs/http2.md)
        timeout = self.route.body_timeout
        task = asyncio.current_task()
        watch = None
        if timeout and not s.ended and not ex.grpc and task is not None:
            watch = BodyWatch(s, timeout, task)
        try:
            refusal = _refusal(ex)
            if refusal is not None:
                await ex.respond_error(*refusal)
                return
            decision = core.engine.decide(ex) if core.engine.active else None
            faults = adopt(ex, decision) if decision is not None else None
            if faults is None and core.request_faults is not None:
                faults = core.request_faults(ex)  # type: ignore[arg-type]
            if faults and core.admit(ex, faults):
                # faults hold a gRPC call no longer than its grpc-timeout (deadline.py)
                await within_deadline(ex, run_chain(faults, ex, ex.proceed_upstream))
            else:
                await ex.proceed_upstream()
            if not ex.head_sent and not ex.finished:
                await ex.respond_error(502, NO_RESPONSE)
        except UpstreamError as e:
            await self._upstream_failed(ex, e)
        except ConnectionError:
            ex.close()  # the client reset the stream or went away
        except asyncio.CancelledError:
            if watch is None or not watch.expired or task is None or ex.client_gone:
                ex.close()
                raise
            task.uncancel()
            await self._body_timed_out(ex, conn)
        except Exception:
            await internal_error(ex, " (HTTP/2)")
        finally:
            if watch is not None:
                watch.stop()
            h = core.options.client_id_header
            client = (h and ex.headers.get(h)) or ex.client_ip
            core.done(ex, client, ex.header("x-chaos-run") or "", "h2", ex.call_status())

    async def _body_timed_out(self, ex: H2Exchange, conn: H2ServerConnection) -> None:
        """The request's DATA stopped for --body-timeout: a JSON 408 when the answer has not
        started, else RST_STREAM(CANCEL); the upstream request is given up either way."""
        t = self.route.body_timeout or 0.0
        if conn.origin is not None:
            conn.origin.listener.timeouts["body"] += 1
        log.warning(
            "an HTTP/2 request body from %s stopped: no DATA for %gs (--body-timeout) [%s]",
            ex.client_ip,
            t,
            ex.request_id,
            extra={"request_id": ex.request_id},
        )
        ex.abort_upstream()
        if ex.head_sent or ex.finished:
            ex.reset_stream(CANCEL)
            return
        with contextlib.suppress(ConnectionError):
            await ex.respond_error(408, f"no request body bytes arrived for {t:g}s")

    async def _upstream_failed(self, ex: H2Exchange, e: UpstreamError) -> None:
        upstream_failed(ex, e, " (HTTP/2)")
        if ex.finished or ex.client_gone:
            return
        if isinstance(e, UpstreamStreamReset):
            ex.fail(e.code)  # the upstream's RST_STREAM, passed on
            return
        with contextlib.suppress(ConnectionError):
            await answer_upstream_failure(ex, e)


def _refusal(ex: H2Exchange) -> tuple[int, str] | None:
    """What the proxy answers itself: CONNECT (no tunnels through it) and targets that are
    not paths (`OPTIONS *` aside, which has nothing to forward either)."""
    too_large = header_refusal(ex.stream.head.result())
    if too_large is not None:
        return 431, too_large
    if ex.method == "CONNECT":
        return 405, "CONNECT is not proxied: chaosproxy forwards to its upstream only"
    if not ex.target.startswith("/"):
        return 400, "the request target must be a path such as /api/items"
    return None
