"""`stale_error`: the caching middlebox that keeps serving a cached error page.

Once a response to a URL (path and query) is an error (status ≥ 400, injected by another fault
or real from the upstream), that same status, headers and body are served for the URL for
`ttl`, with an `Age` header, whatever the origin says meanwhile. Put it in a rule of its own
that matches the URLs a cache would; a rule that injects errors (`continue: true`) feeds it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Headers, Params, Proceed, Reply, register

MAX_BODY = 1024 * 1024  # larger error bodies are served fresh, not cached
MAX_ENTRIES = 10_000
_NOT_CACHED = frozenset({"content-length", "transfer-encoding", "x-request-id", "age"})


@dataclass(frozen=True)
class CachedError:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored_at: float
    expires_at: float


class StaleCache:
    """Error responses by URL until they expire; bounded, oldest entries go first."""

    def __init__(self) -> None:
        self.entries: dict[str, CachedError] = {}

    def get(self, url: str, now: float) -> CachedError | None:
        entry = self.entries.get(url)
        if entry is not None and entry.expires_at <= now:
            del self.entries[url]
            return None
        return entry

    def put(
        self, url: str, status: int, headers: Headers, body: bytes, now: float, ttl: float
    ) -> None:
        if len(self.entries) >= MAX_ENTRIES and url not in self.entries:
            del self.entries[next(iter(self.entries))]
        kept = tuple((k, v) for k, v in headers if k.lower() not in _NOT_CACHED)
        self.entries[url] = CachedError(status, kept, body, now, now + ttl)

    def __repr__(self) -> str:
        return f"<StaleCache entries={len(self.entries)}>"


@register
@dataclass(frozen=True)
class StaleErrorFault(Fault):
    name = "stale_error"
    # Outermost: it answers from its cache before anything else runs, and sees what they sent.
    order = 5

    params = (P.duration("ttl", 60.0, positive=True),)

    ttl: float = 60.0
    state: StaleCache = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", StaleCache())

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        return cls(Params(params, path, cls.params)["ttl"])

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        cache, clock = self.state, ex.clock
        url = f"{ex.path}?{ex.query_string}" if ex.query_string else ex.path
        now = clock.monotonic()
        entry = cache.get(url, now)
        if entry is not None:
            age = int(now - entry.stored_at)
            ex.record(self, f"status={entry.status} age={age}")
            await ex.respond(entry.status, entry.body, [*entry.headers, ("Age", str(age))])
            return

        def capture(status: int, body: bytes, headers: Headers) -> None:
            if status >= 400:
                cache.put(url, status, headers, body, clock.monotonic(), self.ttl)

        seen: list[Reply] = []

        async def note(ex: Exchange, reply: Reply) -> Reply | None:
            if reply.status >= 400:
                seen.append(reply)
            return reply

        async def tee(ex: Exchange, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
            if not seen:
                async for chunk in body:
                    yield chunk
                return
            parts: list[bytes] | None = []
            size = 0
            async for chunk in body:
                if parts is not None:
                    size += len(chunk)
                    if size <= MAX_BODY:
                        parts.append(chunk)
                    else:
                        parts = None
                yield chunk
            if parts is not None and not ex.finished:
                r = seen[0]
                cache.put(url, r.status, r.headers, b"".join(parts), clock.monotonic(), self.ttl)

        ex.on_respond(capture)
        ex.on_reply(note)
        ex.filter_body(tee)
        await proceed()

    def describe(self) -> str:
        return f"stale_error ttl {self.ttl:g}s"
