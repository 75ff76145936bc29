"""`grpc_message`: act on the n-th gRPC message of a call's answer — a gap in a stream, a server
stream that fails mid-way, a message the client cannot parse.

gRPC frames each message with 5 bytes (a compressed flag, a 4-byte big-endian length) and
HTTP/2 cuts the bytes into DATA frames where it likes, so the prefix is read across frame
boundaries as the body streams by; nothing is buffered (a message's bytes pass as they come,
split only where an action falls), so a message of any length costs nothing extra.

- `delay` (with `nth`, default 1): the n-th message waits that long before its first byte
  leaves — a streaming RPC sees a gap, a unary one a slow answer after its head.
- `abort` (with `after_messages`, default 1): once that many messages left, the answer ends
  with trailers `grpc-status` (and `message` as `grpc-message`) and the upstream stream is
  cancelled — a server stream that fails after N items, the client's code sees the status
  after the items.
- `corrupt: true` (with `nth`): the n-th message's payload bytes become 0xFF, its framing
  intact — a protobuf decoder fails on it (a truncated varint), which gRPC reports as INTERNAL.

`direction: request` does the same to the client's messages on their way up (gRPC calls,
which always go upstream over HTTP/2): `delay` holds the n-th one back (the client's window
fills, its sends wait), `corrupt` makes the service fail to parse it (the status its framework
gives a request it cannot read), `abort` answers the call with the status once N messages went
up and cancels the upstream stream — a service that fails after reading part of a client
stream.

A request that is not gRPC, or fewer messages, pass untouched (and the fault is not counted).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

from chaosproxy.faults import params as P
from chaosproxy.faults.base import BodyFilter, Exchange, Fault, Params, Proceed, register
from chaosproxy.faults.grpc_abort import GRPC_CODES, grpc_code, percent_encoded

PREFIX = 5  # compressed flag + 4-byte length


@runtime_checkable
class GrpcStreamExchange(Protocol):
    """An exchange whose answer can end with trailers of the fault's choosing (HTTP/2)."""

    def end_with_trailers(self, fields: list[tuple[str, str]]) -> None: ...


@runtime_checkable
class GrpcRequestExchange(Protocol):
    """An exchange whose request messages a fault can see on their way up, and answer with a
    status at any point (HTTP/2)."""

    def filter_request_body(self, body_filter: BodyFilter) -> None: ...

    async def answer_with_status(self, fields: list[tuple[str, str]]) -> None: ...


def is_grpc(ex: Exchange) -> bool:
    return ex.headers.get("content-type", "").lower().startswith("application/grpc")


@register
@dataclass(frozen=True)
class GrpcMessageFault(Fault):
    name = "grpc_message"
    order = 93  # response side, with the body shapers: after throttle and slicer pace it

    params = (
        P.integer("nth", 1, lo=1),
        P.duration("delay"),
        P.boolean("corrupt", False),
        P.anything(
            "abort",
            {
                "anyOf": [
                    {"enum": sorted(set(GRPC_CODES) - {"OK"})},
                    {"type": "integer", "minimum": 1, "maximum": 16},
                ]
            },
            grpc_code,
        ),
        P.integer("after_messages", 1, lo=0),
        P.anything("message", {"type": "string"}, str),
        P.choice("direction", ("response", "request"), "response"),
    )

    action: str = "delay"  # delay | corrupt | abort
    nth: int = 1  # delay, corrupt: which message (1-based)
    delay: float = 0.0
    code: int = 14  # abort: the grpc-status
    after: int = 1  # abort: messages that leave first
    message: str = "injected by chaosproxy"
    direction: str = "response"  # response: the answer's messages; request: the client's

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        actions = [k for k in ("delay", "corrupt", "abort") if p.has(k)]
        if p.has("corrupt") and not p["corrupt"]:
            actions.remove("corrupt")
        if len(actions) != 1:
            raise p.error("", "give one of delay, corrupt: true or abort")
        action = actions[0]
        allowed = {"abort": {"after_messages", "message"}, "delay": {"nth"}, "corrupt": {"nth"}}
        for key in ("nth", "after_messages", "message"):
            if p.has(key) and key not in allowed[action]:
                raise p.error(key, f"does not apply to {action}")
        message = p["message"] if p.has("message") else cls.message
        code = p["abort"] if action == "abort" else 14
        return cls(
            action, p["nth"], p["delay"] or 0.0, code, p["after_messages"], message, p["direction"]
        )

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        if not is_grpc(ex):
            pass
        elif self.direction == "request":
            if isinstance(ex, GrpcRequestExchange):
                ex.filter_request_body(self._filter)
        elif self.action != "abort" or isinstance(ex, GrpcStreamExchange):
            ex.filter_body(self._filter)
        await proceed()

    def _filter(self, ex: Exchange, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return _Messages(self, ex).run(body)

    def describe(self) -> str:
        if self.action == "abort":
            return f"grpc_message abort {self.code} after {self.after} ({self.direction})"
        return f"grpc_message {self.action} message {self.nth} ({self.direction})"


class _Messages:
    """The answer's bytes read as gRPC messages while they stream through."""

    def __init__(self, fault: GrpcMessageFault, ex: Exchange) -> None:
        self.f = fault
        self.ex = ex
        self.prefix = bytearray()  # the prefix read so far of the message starting
        self.left = 0  # payload bytes still to come of the current message
        self.done = 0  # messages whose prefix was read

    async def _abort(self) -> None:
        f, ex = self.f, self.ex
        ex.record(f, f"grpc-status={f.code} after_messages={f.after}")
        fields = [("grpc-status", str(f.code)), ("grpc-message", percent_encoded(f.message))]
        if isinstance(ex, GrpcRequestExchange) and f.direction == "request":
            await ex.answer_with_status(fields)  # the messages went up: the "service" fails
        elif isinstance(ex, GrpcStreamExchange):
            ex.end_with_trailers(fields)

    async def run(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        f, ex = self.f, self.ex
        if f.action == "abort" and f.after == 0:
            await self._abort()
            return
        async for chunk in body:
            out = bytearray()
            view = memoryview(chunk)
            i, n = 0, len(view)
            while i < n:
                if self.left == 0:
                    if not self.prefix and f.action == "delay" and self.done + 1 == f.nth:
                        if out:
                            yield bytes(out)
                            out.clear()
                        ex.record(f, f"delay={f.delay:.3f} message={f.nth}")
                        await ex.clock.sleep(f.delay)  # from now: not from the arrival
                    take = min(PREFIX - len(self.prefix), n - i)
                    self.prefix += view[i : i + take]
                    out += view[i : i + take]
                    i += take
                    if len(self.prefix) < PREFIX:
                        continue
                    self.done += 1
                    self.left = int.from_bytes(self.prefix[1:], "big")
                    self.prefix.clear()
                    if f.action == "corrupt" and self.done == f.nth:
                        ex.record(f, f"corrupt message={f.nth} bytes={self.left}")
                else:
                    take = min(self.left, n - i)
                    if f.action == "corrupt" and self.done == f.nth:
                        out += b"\xff" * take
                    else:
                        out += view[i : i + take]
                    self.left -= take
                    i += take
                ended = self.left == 0 and not self.prefix  # the message `done` left whole
                if f.action == "abort" and ended and self.done == f.after:
                    yield bytes(out)
                    await self._abort()
                    return
            if out:
                yield bytes(out)
