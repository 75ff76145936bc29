"""`goaway`: the proxy sends GOAWAY on the client's HTTP/2 connection — a drain, or a server
that gives up on the connection.

`mode: graceful` is the drain Envoy and nghttpx do (a deploy, a listener going away): GOAWAY
with the largest stream id 2^31-1 (open no new streams here; those already on the way still
count), `interval` later a second GOAWAY with the last stream id received; streams up to it
finish (this one included), newer ones are refused (REFUSED_STREAM), and the connection closes
once its streams ended. A gRPC client sees calls in flight complete and its channel reconnect.

`mode: abrupt`: GOAWAY with the last stream id *before* this stream and `code` (NO_ERROR,
ENHANCE_YOUR_CALM, INTERNAL_ERROR...), then the connection closes: this stream (and any newer)
was never processed, so gRPC retries it transparently when retries are on, else the call
fails UNAVAILABLE; streams before it that were still running are cut.

HTTP/1.1 has no GOAWAY; the nearest thing is done instead: graceful answers with
`Connection: close` and closes the connection after the answer (the client's next request
opens a new one); abrupt closes the connection before anything is forwarded (an empty reply:
the request was not processed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Headers, Params, Proceed, Reply, register
from chaosproxy.faults.stream_reset import H2_ERRORS, h2_error_code


@runtime_checkable
class ConnectionOfStreams(Protocol):
    """An exchange that is one stream of a multiplexed connection it can send GOAWAY on."""

    def goaway(self, graceful: bool, code: int, interval: float) -> None: ...


@register
@dataclass(frozen=True)
class GoawayFault(Fault):
    name = "goaway"
    order = 25  # before request-side delays: a drain starts when the stream arrives

    params = (
        P.choice("mode", ("graceful", "abrupt"), "graceful"),
        P.anything(
            "code",
            {"anyOf": [{"enum": sorted(H2_ERRORS)}, {"type": "integer", "minimum": 0}]},
            h2_error_code,
        ),
        P.duration("interval", 1.0),
    )

    mode: str = "graceful"
    code: int = 0
    interval: float = 1.0  # graceful: between the two GOAWAY frames

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        if p.has("interval") and p["mode"] != "graceful":
            raise p.error("interval", "only applies with mode: graceful")
        return cls(p["mode"], p["code"] if p.has("code") else 0, p["interval"])

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        graceful = self.mode == "graceful"
        if isinstance(ex, ConnectionOfStreams):
            ex.record(self, f"{self.mode} code={self.code}")
            ex.goaway(graceful, self.code, self.interval)
            if graceful:
                await proceed()  # the stream in flight finishes
            return
        # HTTP/1.1: no frames for it, the nearest honest thing.
        if not graceful:
            ex.record(self, "abrupt http/1.1 close")
            ex.close()
            return
        ex.record(self, "graceful http/1.1 connection: close")
        ex.on_reply(_close_reply)
        ex.on_respond(_close_respond)
        ex.on_finish(ex.close)  # the answer went out: the connection closes after it
        await proceed()

    def describe(self) -> str:
        return f"goaway {self.mode} code={self.code}"


async def _close_reply(ex: Exchange, reply: Reply) -> Reply:
    _close_respond(reply.status, b"", reply.headers)
    return reply


def _close_respond(status: int, body: bytes, headers: Headers) -> None:
    headers[:] = [(k, v) for k, v in headers if k.lower() != "connection"]
    headers.append(("Connection", "close"))
