"""The hook pipeline of one exchange, written once for the proxy and the fault tests' fakes.

Faults register hooks on the exchange (`on_reply`, `on_headers_sent`, `filter_body`,
`on_respond`, `on_finish`); `Hooks` holds them, and `proceed` / `stream` play them in their one
order: fetch upstream → reply hooks (a hook may answer the client itself) → the head goes out →
headers hooks → the body through the filters, outermost registration first → end. What writes to
the client is a `Wire`: the proxy's socket, or a fake that records what a client would see.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol

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


class Wire(Protocol):
    """The client side of one exchange, as the pipeline writes to it."""

    async def send_head(self, reply: Reply) -> None:
        """Send the status line and headers (the exchange's response status is now set)."""

    async def write(self, chunk: bytes) -> None:
        """Send one piece of the body."""

    async def end(self) -> None:
        """The body is complete: finish the response and the exchange."""


class Hooks:
    """The hooks registered on one exchange, in registration order. Lists stay None until
    used: most exchanges register nothing."""

    __slots__ = ("filters", "finish", "headers", "reply", "respond")

    def __init__(self) -> None:
        self.reply: list[ReplyHook] | None = None
        self.headers: list[HeadersHook] | None = None
        self.filters: list[BodyFilter] | None = None
        self.respond: list[RespondHook] | None = None
        self.finish: list[Callable[[], None]] | None = None

    def on_reply(self, hook: ReplyHook) -> None:
        self.reply = [*(self.reply or ()), hook]

    def on_headers_sent(self, hook: HeadersHook) -> None:
        self.headers = [*(self.headers or ()), hook]

    def filter_body(self, body_filter: BodyFilter) -> None:
        self.filters = [*(self.filters or ()), body_filter]

    def on_respond(self, hook: RespondHook) -> None:
        self.respond = [*(self.respond or ()), hook]

    def on_finish(self, callback: Callable[[], None]) -> None:
        self.finish = [*(self.finish or ()), callback]

    @property
    def passthrough(self) -> bool:
        """No headers hook and no body filter: the head and body may leave in one write."""
        return self.headers is None and self.filters is None

    def responding(self, status: int, body: bytes, headers: Iterable[tuple[str, str]]) -> Headers:
        """Show a whole response to the respond hooks, just before it leaves; its headers."""
        out = list(headers)
        for hook in self.respond or ():
            hook(status, body, out)
        return out

    def finished(self, request_id: str) -> None:
        """Run the finish callbacks once; a failing one is logged, the others still run."""
        callbacks, self.finish = self.finish, None
        for cb in callbacks or ():
            try:
                cb()
            except Exception:
                log.exception("finish callback failed [%s]", request_id)


async def proceed(ex: Exchange, hooks: Hooks, wire: Wire) -> None:
    """The innermost step of a fault chain: forward upstream, run the reply hooks, stream."""
    reply, body = await ex.fetch_upstream()
    try:
        for hook in hooks.reply or ():
            answered = await hook(ex, reply)
            if answered is None or ex.finished:
                return
            reply = answered
        await stream(ex, hooks, wire, reply, body)
    finally:
        await aclose(body)


async def stream(
    ex: Exchange, hooks: Hooks, wire: Wire, reply: Reply, body: AsyncIterator[bytes]
) -> None:
    """Send `reply`'s head, run the headers hooks, then `body` through the filters. Errors
    from the body (an upstream breaking off) propagate once the filters are closed."""
    await wire.send_head(reply)
    for hook in hooks.headers or ():
        await hook(ex)
        if ex.finished:
            return
    filtered = body
    for f in hooks.filters or ():
        filtered = f(ex, filtered)
    try:
        async for chunk in filtered:
            if ex.finished:
                return
            await wire.write(chunk)
    finally:
        if filtered is not body:
            await aclose(filtered)
    if not ex.finished:
        await wire.end()


async def aclose(it: AsyncIterator[bytes]) -> None:
    """Close an async generator (a body or a filter) so its `finally` runs now."""
    close = getattr(it, "aclose", None)  # an AsyncIterator need not be a generator
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
