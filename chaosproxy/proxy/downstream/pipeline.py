"""The hook pipeline of one exchange, written once: the proxy runs it, and so do the fault tests
(their fake exchange drives this same `proceed`).

Faults register hooks on the exchange (`on_reply`, `on_headers_sent`, `filter_body`,
`on_respond`, `on_finish`); `Hooks` holds them, and `proceed` / `stream` play them in their one
order: fetch upstream → reply hooks (a hook may answer the client itself) → the head goes out →
headers hooks → the body through the filters, outermost registration first → end. What fetches
and writes is a `Wire`: the proxy's upstream and client socket (`exchange.py`), or the
tests' fake that records what a client would see.

The per-request path goes through here with no rule matching too, so it allocates nothing it
can avoid: `Hooks` is a base class of the exchange (no object of its own), its lists stay None
until a fault registers something, and an answer no hook looks at is never turned into a `Reply`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol, TypeVar

from chaosproxy.common.errors import UpstreamError
from chaosproxy.faults.base import (
    BodyFilter,
    Exchange,
    Headers,
    HeadersHook,
    Reply,
    ReplyHook,
    RespondHook,
)

log = logging.getLogger("chaosproxy.proxy")


class Body(Protocol):
    """The upstream's body, chunk by chunk as it arrives."""

    @property
    def complete(self) -> bool:
        """Every byte already arrived: the first piece may leave in the same write as the head
        (one syscall)."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def __anext__(self) -> bytes: ...


class Answer(Protocol):
    """The upstream's answer once its head arrived (the proxy's `UpstreamResponse`)."""

    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def headers(self) -> Headers:
        """End-to-end headers, in the upstream's order and spelling (decoded when read)."""
        ...

    def body(self) -> Body: ...

    def release(self) -> None:
        """Done with the answer, read to its end or not (the proxy's pool takes the
        connection back, or closes it)."""


A = TypeVar("A", bound=Answer)


class Wire(Protocol[A]):
    """Both ends of one exchange as the pipeline drives them; `A` is what its upstream
    answers with."""

    async def fetch(self) -> A:
        """Forward the request upstream; the answer once its head arrived."""
        ...

    def send_head(self, reply: Reply, first: bytes) -> bool:
        """Send the status line and headers, then `first`; True when a body may follow."""
        ...

    def send_answer(self, answer: A, first: bytes) -> bool:
        """`send_head` for a head no hook looked at (the proxy writes it as received)."""
        ...

    async def write(self, chunk: bytes) -> None:
        """Send one piece of the body."""

    def end(self) -> None:
        """The body is complete: finish the response and the exchange."""

    def broke_off(self, error: UpstreamError) -> None:
        """The upstream failed mid-body: the client must see the truncation."""


class Hooks:
    """The hooks registered on one exchange, in registration order: a base class of the
    exchanges that implement them. Lists stay None until used: most exchanges register
    nothing."""

    __slots__ = (
        "body_filters",
        "finish_callbacks",
        "headers_hooks",
        "reply_hooks",
        "respond_hooks",
    )

    def __init__(self) -> None:
        self.reply_hooks: list[ReplyHook] | None = None
        self.headers_hooks: list[HeadersHook] | None = None
        self.body_filters: list[BodyFilter] | None = None
        self.respond_hooks: list[RespondHook] | None = None
        self.finish_callbacks: list[Callable[[], None]] | None = None

    def on_reply(self, hook: ReplyHook) -> None:
        self.reply_hooks = [*(self.reply_hooks or ()), hook]

    def on_headers_sent(self, hook: HeadersHook) -> None:
        self.headers_hooks = [*(self.headers_hooks or ()), hook]

    def filter_body(self, body_filter: BodyFilter) -> None:
        self.body_filters = [*(self.body_filters or ()), body_filter]

    def on_respond(self, hook: RespondHook) -> None:
        self.respond_hooks = [*(self.respond_hooks or ()), hook]

    def on_finish(self, callback: Callable[[], None]) -> None:
        self.finish_callbacks = [*(self.finish_callbacks or ()), callback]

    @property
    def passthrough(self) -> bool:
        """No headers hook and no body filter: the head and body may leave in one write."""
        return self.headers_hooks is None and self.body_filters is None

    def responding(self, status: int, body: bytes, headers: Iterable[tuple[str, str]]) -> Headers:
        """Show a whole response to the respond hooks, just before it leaves; its headers."""
        out = list(headers)
        for hook in self.respond_hooks or ():
            hook(status, body, out)
        return out

    def run_finish(self, request_id: str) -> None:
        """Run the finish callbacks once; a failing one is logged, the others still run."""
        callbacks, self.finish_callbacks = self.finish_callbacks, None
        for cb in callbacks or ():
            try:
                cb()
            except Exception:
                log.exception("finish callback failed [%s]", request_id)


async def proceed(ex: Exchange, hooks: Hooks, wire: Wire[A]) -> None:
    """The innermost step of a fault chain: forward upstream, run the reply hooks, stream."""
    answer = await wire.fetch()
    body = answer.body()
    try:
        if hooks.reply_hooks is None and hooks.passthrough:
            # Nothing looks at the reply: its head goes back as the upstream sent it.
            first = await _first(body) if body.complete else b""
            if wire.send_answer(answer, first):
                await _pump(ex, wire, body, body)
            elif not ex.finished:
                wire.end()
            return
        reply = Reply(answer.status, answer.reason, answer.headers)
        for hook in hooks.reply_hooks or ():
            answered = await hook(ex, reply)
            if answered is None or ex.finished:
                return
            reply = answered
        await stream(ex, hooks, wire, reply, body)
    finally:
        answer.release()


async def stream(ex: Exchange, hooks: Hooks, wire: Wire[A], reply: Reply, body: Body) -> None:
    """Send `reply`'s head, run the headers hooks, then `body` through the filters."""
    # Not under a body filter: a throttled first write would hold the head back too.
    first = await _first(body) if hooks.passthrough and body.complete else b""
    if not wire.send_head(reply, first):
        wire.end()
        return
    for hook in hooks.headers_hooks or ():
        await hook(ex)
        if ex.finished:
            return
    filtered: AsyncIterator[bytes] = body
    for f in hooks.body_filters or ():
        filtered = f(ex, filtered)
    await _pump(ex, wire, filtered, body)


async def _pump(ex: Exchange, wire: Wire[A], filtered: AsyncIterator[bytes], body: Body) -> None:
    """Write `filtered` to the client, then end the body; an upstream failure mid-body is
    handed to the wire (the proxy closes the connection so the client sees the truncation)."""
    try:
        async for chunk in filtered:
            if ex.finished:
                return
            await wire.write(chunk)
    except UpstreamError as e:
        wire.broke_off(e)
        return
    finally:
        if filtered is not body:
            await aclose(filtered)
    if not ex.finished:
        wire.end()


async def _first(body: Body) -> bytes:
    with contextlib.suppress(StopAsyncIteration):
        return await body.__anext__()
    return b""


async def aclose(it: AsyncIterator[bytes]) -> None:
    """Close a body filter (an async generator) so its `finally` runs now."""
    close = getattr(it, "aclose", None)  # an AsyncIterator need not be a generator
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
