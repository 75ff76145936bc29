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

from chaosproxy.common.errors import UpstreamError
from chaosproxy.proxy.downstream.core import (
    NO_RESPONSE,
    ProxyCore,
    adopt,
    answer_upstream_failure,
    internal_error,
    run_chain,
    upstream_failed,
)
from chaosproxy.proxy.h2.exchange import H2Exchange
from chaosproxy.proxy.h2.forward import Route, UpstreamStreamReset
from chaosproxy.proxy.h2.headers import split_pseudo
from chaosproxy.proxy.h2.server import H2ServerConnection
from chaosproxy.proxy.h2.stream import Stream


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
                await ex.respond_error(*refusal)
                return
            decision = core.engine.decide(ex) if core.engine.active else None
            faults = adopt(ex, decision) if decision is not None else None
            if faults is None and core.request_faults is not None:
                faults = core.request_faults(ex)  # type: ignore[arg-type]
            if faults and core.admit(ex, faults):
                await run_chain(faults, ex, ex.proceed_upstream)
            else:
                await ex.proceed_upstream()
            if not ex.head_sent and not ex.finished:
                await ex.respond_error(502, NO_RESPONSE)
        except UpstreamError as e:
            await self._upstream_failed(ex, e)
        except ConnectionError:
            ex.close()  # the client reset the stream or went away
        except asyncio.CancelledError:
            ex.close()
            raise
        except Exception:
            await internal_error(ex, " (HTTP/2)")
        finally:
            h = core.options.client_id_header
            client = (h and ex.headers.get(h)) or ex.client_ip
            core.done(ex, client, ex.header("x-chaos-run") or "", "h2")

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
    if ex.method == "CONNECT":
        return 405, "CONNECT is not proxied: chaosproxy forwards to its upstream only"
    if not ex.target.startswith("/"):
        return 400, "the request target must be a path such as /api/items"
    return None
