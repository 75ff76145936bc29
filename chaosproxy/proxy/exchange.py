"""One client request in flight: the proxy's implementation of the faults' Exchange."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDictProxy

from chaosproxy._clock import Clock
from chaosproxy.engine.core import Decision
from chaosproxy.engine.events import FaultInjected
from chaosproxy.errors import UpstreamError
from chaosproxy.faults.base import BodyFilter, Fault, HeadersHook, Reply, ReplyHook, RespondHook
from chaosproxy.proxy.headers import forwardable
from chaosproxy.proxy.websocket import HANDSHAKE, bad_handshake, relay_websocket

if TYPE_CHECKING:
    from chaosproxy.proxy.server import ProxyCore

log = logging.getLogger("chaosproxy.proxy")

_LINGER_RST = struct.pack("ii", 1, 0)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_json(status: int, request_id: str, details: str, message: str | None = None) -> bytes:
    """The one JSON error shape of every proxy-made or injected error."""
    msg = message or _reason(status)
    return json.dumps(
        {"error": {"code": status, "message": msg, "details": details, "requestId": request_id}}
    ).encode()


class ProxyExchange:
    """State of one exchange; faults drive it through the methods of `faults.base.Exchange`."""

    __slots__ = (
        "_body_filters",
        "_finish_cbs",
        "_finished",
        "_headers_hooks",
        "_reply_hooks",
        "_respond_hooks",
        "_shared",
        "_status",
        "clock",
        "core",
        "decision",
        "injected",
        "mark",
        "request",
        "request_id",
        "response",
        "retry_after",
        "rng",
        "t0",
        "upstream_duration",
        "upstream_error",
    )

    def __init__(self, core: ProxyCore, request: web.BaseRequest, request_id: str) -> None:
        # Only what every request needs is set here; the request's views (path, query, peer)
        # are read lazily, so pass-through traffic never computes what no rule looks at.
        self.core = core
        self.request = request
        self.request_id = request_id
        self.clock: Clock = core.clock
        self.rng: random.Random = core.rng
        self.decision: Decision | None = None
        self.response: web.StreamResponse | None = None
        self.t0 = core.clock.monotonic()
        self.upstream_duration: float | None = None
        self.upstream_error: str | None = None
        self.injected = False
        self.mark: str | None = None  # X-Chaos-Injected value, when --mark-injected
        self.retry_after: float | None = None
        self._finished = False
        self._status: int | None = None
        self._reply_hooks: list[ReplyHook] | None = None
        self._respond_hooks: list[RespondHook] | None = None
        self._headers_hooks: list[HeadersHook] | None = None
        self._body_filters: list[BodyFilter] | None = None
        self._finish_cbs: list[Callable[[], None]] | None = None
        self._shared: dict[str, Any] | None = None

    # ------------------------------------------------------------ request views

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def path(self) -> str:
        return self.request.path

    @property
    def target(self) -> str:
        """The request target exactly as received (path and query, still encoded)."""
        return self.request.raw_path

    @property
    def query_string(self) -> str:
        return self.request.query_string

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.request.headers

    @property
    def client_ip(self) -> str:
        return self.request.remote or ""

    # ------------------------------------------------------------ state

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def client_gone(self) -> bool:
        tr = self.request.transport
        return tr is None or tr.is_closing()

    @property
    def response_status(self) -> int | None:
        return self._status

    @property
    def shared(self) -> dict[str, Any]:
        if self._shared is None:
            self._shared = {}
        return self._shared

    @property
    def upstream_url(self) -> str:
        return str(self.core.upstream.config.url)

    def record(self, fault: Fault, outcome: str) -> None:
        self.injected = True
        d = self.decision
        self.core.bus.emit(
            FaultInjected(
                t=self.clock.wall(),
                request_id=self.request_id,
                method=self.method,
                path=self.path,
                scenario=d.scenario if d else "",
                phase=d.phase if d else "",
                rule=d.rule_of(fault) if d else "",
                fault=fault.name,
                outcome=outcome,
            )
        )

    # ------------------------------------------------------------ hooks

    def on_reply(self, hook: ReplyHook) -> None:
        if self._reply_hooks is None:
            self._reply_hooks = []
        self._reply_hooks.append(hook)

    def on_respond(self, hook: RespondHook) -> None:
        if self._respond_hooks is None:
            self._respond_hooks = []
        self._respond_hooks.append(hook)

    def on_headers_sent(self, hook: HeadersHook) -> None:
        if self._headers_hooks is None:
            self._headers_hooks = []
        self._headers_hooks.append(hook)

    def filter_body(self, body_filter: BodyFilter) -> None:
        if self._body_filters is None:
            self._body_filters = []
        self._body_filters.append(body_filter)

    def on_finish(self, callback: Callable[[], None]) -> None:
        if self._finish_cbs is None:
            self._finish_cbs = []
        self._finish_cbs.append(callback)

    def run_finish_callbacks(self) -> None:
        cbs, self._finish_cbs = self._finish_cbs, None
        for cb in cbs or ():
            try:
                cb()
            except Exception:
                log.exception("finish callback failed [%s]", self.request_id)

    # ------------------------------------------------------------ terminal actions

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    def error_body(self, status: int, details: str, message: str | None = None) -> bytes:
        return error_json(status, self.request_id, details, message)

    async def respond(
        self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        if self.response is not None and self.response.prepared:
            raise RuntimeError("the response head was already sent")
        resp = web.Response(status=status, body=body)
        if self._respond_hooks is not None:
            headers = list(headers)
            for hook in self._respond_hooks:
                hook(status, body, headers)
        for name, value in headers:
            if name.lower() == "retry-after":
                self.retry_after = _retry_after(value)
            resp.headers.add(name, value)
        resp.headers["X-Request-Id"] = self.request_id
        if self.mark is not None:
            resp.headers["X-Chaos-Injected"] = self.mark
        self._finished = True
        self._status = status
        self.response = resp
        try:
            await resp.prepare(self.request)
            await resp.write_eof()
        except ConnectionError:
            pass

    async def write_raw(self, data: bytes) -> None:
        tr = self.request.transport
        if tr is None or tr.is_closing():
            raise ConnectionResetError("client disconnected")
        tr.write(data)
        await self.request.writer.drain()

    async def flush(self) -> None:
        tr = self.request.transport
        if tr is None or tr.is_closing() or not tr.get_write_buffer_size():
            return
        # With a zero high-water mark, drain() returns only once the buffer is empty.
        tr.set_write_buffer_limits(high=0)
        await self.request.writer.drain()

    def reset(self) -> None:
        self._finished = True
        tr = self.request.transport
        if tr is None:
            return
        sock = tr.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        tr.abort()

    def close(self) -> None:
        self._finished = True
        tr = self.request.transport
        if tr is not None:
            tr.close()

    # ------------------------------------------------------------ forwarding

    def upstream_headers(self) -> list[tuple[str, str]]:
        core = self.core
        h = self.request.headers
        out = forwardable(h, core.request_skip)
        if core.forwarded_headers:
            prior = h.get("X-Forwarded-For")
            ip = self.client_ip
            out.append(("X-Forwarded-For", f"{prior}, {ip}" if prior else ip))
            out.append(("X-Forwarded-Proto", core.scheme))
            host = h.get("Host")
            if host:
                out.append(("X-Forwarded-Host", host))
        if "X-Request-Id" not in h:
            out.append(("X-Request-Id", self.request_id))
        return out

    async def proceed_websocket(self) -> None:
        """The innermost step of a websocket upgrade: relay it (after any request-side faults)."""
        rejected = bad_handshake(self.request, self.request_id)
        if rejected is not None:
            self.response, self._status, self._finished = rejected, 400, True
            return
        headers = [(k, v) for k, v in self.upstream_headers() if k.lower() not in HANDSHAKE]
        t = self.clock.monotonic()
        try:
            self.response = await relay_websocket(self.core, self.request, self.request_id, headers)
        except UpstreamError as e:
            self.upstream_duration = self.clock.monotonic() - t
            self.upstream_error = e.reason
            raise
        self._status = self.response.status
        self._finished = True

    async def fetch_upstream(self) -> tuple[Reply, AsyncIterator[bytes]]:
        req = self.request
        body = req.content if req.can_read_body else None
        if body is not None and "Expect" in self.headers:
            await self._send_continue()
        t = self.clock.monotonic()
        try:
            resp = await self.core.upstream.request(
                self.method, self.target, self.upstream_headers(), body
            )
        except UpstreamError as e:
            self.upstream_error = e.reason
            raise
        finally:
            self.upstream_duration = self.clock.monotonic() - t
        reply = Reply(resp.status, resp.reason, resp.headers)
        return reply, resp.body()

    async def _send_continue(self) -> None:
        """The client waits for `100 Continue` before its body; send it once we forward it."""
        req = self.request
        if req.version >= (1, 1) and self.headers["Expect"].lower() == "100-continue":
            await req.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            req.writer.output_size = 0

    async def proceed_upstream(self) -> None:
        reply_or_none: Reply | None
        reply_or_none, body = await self.fetch_upstream()
        try:
            for hook in self._reply_hooks or ():
                reply_or_none = await hook(self, reply_or_none)
                if reply_or_none is None or self._finished:
                    return
            await self.stream_reply(reply_or_none, body)
        finally:
            await _aclose(body)

    async def stream_reply(self, reply: Reply, body: AsyncIterator[bytes]) -> None:
        """Send `reply`'s head, run headers hooks, then stream `body` through the filters."""
        # A body that already arrived whole leaves with its head in one write (one syscall).
        # Not under a body filter: a throttled first write would hold the head back too.
        coalesce = (
            self._headers_hooks is None
            and self._body_filters is None
            and getattr(body, "complete", False)
        )
        cls = _OneWriteResponse if coalesce else web.StreamResponse
        resp = cls(status=reply.status, reason=reply.reason or None, headers=reply.headers)
        h = resp.headers
        if "X-Request-Id" not in h:
            h["X-Request-Id"] = self.request_id
        if self.mark is not None:
            h["X-Chaos-Injected"] = self.mark
        ra = h.get("Retry-After")
        if ra is not None:
            self.retry_after = _retry_after(ra)
        self.response = resp
        self._status = reply.status
        await resp.prepare(self.request)
        for hook in self._headers_hooks or ():
            await hook(self)
            if self._finished:
                return
        stream = body
        for f in self._body_filters or ():
            stream = f(self, stream)
        try:
            async for chunk in stream:
                if self._finished:
                    return
                await resp.write(chunk)
        except UpstreamError as e:
            # Upstream broke off mid-body: close so the client sees the truncation.
            self.upstream_error = e.reason
            log.warning(
                "upstream failed mid-response [%s]: %s",
                self.request_id,
                e.details,
                extra={"request_id": self.request_id},
            )
            self.close()
            return
        finally:
            if stream is not body:
                await _aclose(stream)
        if not self._finished:
            self._finished = True
            await resp.write_eof()


class _OneWriteResponse(web.StreamResponse):
    """Holds the head back until the first body write, as `web.Response` does."""

    _send_headers_immediately = False


async def _aclose(it: AsyncIterator[bytes]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


def _retry_after(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None
